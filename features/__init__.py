"""What the data is: canonical tables, their sources, the Feast catalog and store. Imports only
``core``."""
