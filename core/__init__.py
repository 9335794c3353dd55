"""The shared core: settings, model kinds, typed columns and the scoring object. Imports no other
project package."""
