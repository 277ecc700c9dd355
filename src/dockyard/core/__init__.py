"""Pure building blocks shared by server and client: no I/O, no framework."""
