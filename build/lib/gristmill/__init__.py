"""Gristmill: the domain core shared by the api, worker and scheduler services."""

__version__ = "0.1.0"
