"""Dockyard: a container image registry server and a daemonless client."""

__version__ = "0.1.0"
__all__ = ["__version__"]
