"""The ``wirewatch`` command line. Nothing else in the package imports this."""
