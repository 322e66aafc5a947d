"""Webhook secrets at rest: sealed with AES-GCM under a key of their own, derived from the
compliance key with HKDF, so a database dump alone signs nothing.

A sealed secret is ``version || nonce || ciphertext``; the owner's user id is bound in as
associated data, so a sealed value copied to another user's endpoint does not open.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailmerger_queue.keys import derive_key

_INFO = b"mailmerger webhook secret"
_VERSION = b"\x01"
_NONCE = 12


class SecretBox:
    """Seals and opens webhook secrets under the key derived from ``compliance_key`` (32 bytes)."""

    def __init__(self, compliance_key: bytes) -> None:
        self._aead = AESGCM(derive_key(compliance_key, _INFO))

    def seal(self, secret: bytes, *, user_id: int) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, secret, _bound(user_id))

    def open(self, sealed: bytes, *, user_id: int) -> bytes:
        """The secret; ``cryptography``'s InvalidTag when it was sealed under another key or user."""
        if sealed[:1] != _VERSION:
            raise ValueError("not a sealed webhook secret")
        nonce, ciphertext = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        return self._aead.decrypt(nonce, ciphertext, _bound(user_id))


def _bound(user_id: int) -> bytes:
    return f"webhook-endpoint user {user_id}".encode()
