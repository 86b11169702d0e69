"""The single source of satchel's version string."""

__version__ = "0.1.0"
