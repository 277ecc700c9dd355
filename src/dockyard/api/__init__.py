"""The HTTP face of the registry: an ASGI app whose handlers only call services."""
