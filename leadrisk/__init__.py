"""The ``leadrisk`` command line: the one entry point, the only package that imports every stage."""
