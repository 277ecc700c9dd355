"""The page handlers, one module per subject; `web.routes` binds them to paths."""
