"""Issue 14: the rough edges a new user hit, each with its test."""
