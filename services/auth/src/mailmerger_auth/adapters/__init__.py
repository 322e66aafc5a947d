"""Clients for what lives outside the process (Google)."""
