"""Users, sites, sessions, API tokens, roles and permissions."""
