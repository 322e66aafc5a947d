"""Secrets at rest: AES-256-GCM under a keyring of named keys.

A sealed value is stored as ``nonce || ciphertext+tag`` next to the id of the key that sealed it.
Every seal names a *context* (associated data) saying whose secret it is and which one: a Gmail
refresh token is bound to its user id, account id and field, so a ciphertext copied into another
row, or into the other field of the same row, fails to open. Rotation re-seals under the active
key (``rekeying.reseal_secrets``); old keys stay in the keyring until that has run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailmerger_auth.settings import EncryptionSettings

NONCE_BYTES = 12  # GCM's native nonce size; random nonces are safe far beyond our volume per key


class SealedSecretError(Exception):
    """A sealed value cannot be opened: unknown key, wrong context, or tampered bytes."""


class Sealer:
    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError(f"active key {active_key_id!r} is not in the keyring")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    @classmethod
    def from_settings(cls, settings: EncryptionSettings) -> Sealer:
        return cls(settings.key_bytes(), settings.active_key)

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Encrypt under the active key (``active_key_id`` must be stored with the result)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._keys[self.active_key_id].encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, *, key_id: str, context: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise SealedSecretError(f"key {key_id!r} is not in the keyring")
        try:
            return key.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise SealedSecretError("the sealed value does not belong here or was altered") from None


def gmail_token_context(user_id: int, account_id: int, field: str) -> bytes:
    return f"mailmerger-auth/gmail-account/{user_id}/{account_id}/{field}".encode()


def signing_key_context(kid: str) -> bytes:
    return f"mailmerger-auth/signing-key/{kid}".encode()
