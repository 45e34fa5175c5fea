"""The ``tagtool`` command line."""
