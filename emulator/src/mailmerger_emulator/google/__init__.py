"""A local stand-in for Google OAuth 2.0 / OpenID Connect and the Gmail API (see emulator/README.md)."""
