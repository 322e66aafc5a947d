"""Clients for the other services' internal routes (shapes in ``mailmerger_shared.internal_api``)."""
