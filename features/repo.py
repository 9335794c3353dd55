"""The Feast repository as the ``feast`` CLI sees it: the catalog of ``features/definitions.py``
built from the current settings, as module-level objects. Only the CLI imports this module;
leadrisk's own code calls ``definitions(settings)``."""

from core.settings import get_settings
from features.definitions import definitions

globals().update(definitions(get_settings()))
