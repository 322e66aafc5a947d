"""Clients for what lies outside the process: Gmail, auth's token route, object storage."""
