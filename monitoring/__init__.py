"""How we know it still works: the prediction log, whylogs profiles, drift, alerts, feedback and
KPIs. Imports ``training`` (the registry), ``features`` and ``core``."""
