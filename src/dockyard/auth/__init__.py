"""Who may do what: credentials, signed tokens, scopes and the access policy."""
