"""Clients for what lives outside the process: the object store."""
