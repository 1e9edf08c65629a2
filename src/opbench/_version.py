"""The package's version, in a module of its own so that any module can read it without importing the package's
public facade (`opbench/__init__.py`, which names the API)."""

__version__ = "0.1.0"
