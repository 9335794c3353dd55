"""How a model is made: training sets from Feast, candidates, evaluation, the MLflow registry.
Imports ``features`` and ``core``."""
