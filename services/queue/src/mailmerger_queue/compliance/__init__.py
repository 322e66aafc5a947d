"""Compliance: the suppression list, RFC 8058 one-click unsubscribe, recipient-domain rails."""
