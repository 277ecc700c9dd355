"""The `dockyard` command: a thin layer over the app factory and, later, the client."""
