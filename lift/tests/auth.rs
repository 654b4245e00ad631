//! JWT authentication, roles and scopes, end to end (being written).
