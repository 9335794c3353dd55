"""How it answers: the BentoML service, the scorer, the batcher and packaging. Imports
``monitoring``, ``features`` and ``core``; never ``training``."""
