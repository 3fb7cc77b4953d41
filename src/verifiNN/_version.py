__version__ = "0.1.0"

SOLVER_NAME = "verifiNN"
"""The solver's full name (``verifinn --name``, the VNN-LIB solver interface)."""
