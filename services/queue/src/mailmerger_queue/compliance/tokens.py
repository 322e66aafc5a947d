"""Unsubscribe tokens: which campaign row a one-click unsubscribe link belongs to, sealed.

A link must be unguessable (nobody unsubscribes someone else by trying numbers), say nothing
about the account or the recipient (it travels in headers and is logged by mail servers), and
need no lookup table (every message of a 100k-row campaign carries one). So the token is the
campaign id and row number sealed with AES-GCM under a key derived from the queue's secret key:
a forged or altered token fails authentication, and the ciphertext reveals nothing.

The nonce is synthetic (an HMAC of the ids, as in AES-GCM-SIV's construction): one row always
gets the same token, so the header's link and the body's ``{{ unsubscribe_url }}`` are one link,
and two rows never share a nonce.

A token is 40 bytes — nonce (12), sealed ids (12), tag (16) — written as 54 base64url characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from typing import TYPE_CHECKING, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailmerger_queue.keys import derive_key

if TYPE_CHECKING:
    from mailmerger_queue.settings import QueueSettings

UNSUBSCRIBE_PATH = "/v1/unsubscribe/"
_IDS = struct.Struct(">QI")  # campaign id (bigint), row number (int)
_NONCE = 12
_TOKEN_BYTES = _NONCE + _IDS.size + 16
_PURPOSE = b"mailmerger unsubscribe token"


class Row(NamedTuple):
    campaign_id: int
    row_number: int


class UnsubscribeTokens:
    """Seals and opens the token of a campaign row, and makes its link."""

    def __init__(self, secret_key: bytes, public_url: str) -> None:
        self._aead = AESGCM(derive_key(secret_key, _PURPOSE))
        self._nonce_key = derive_key(secret_key, _PURPOSE + b" nonce")
        self._base = public_url.rstrip("/") + UNSUBSCRIBE_PATH

    @classmethod
    def of(cls, settings: QueueSettings) -> UnsubscribeTokens:
        """The tokens of this deployment: its secret key, links under its public URL."""
        return cls(settings.compliance.key(), settings.http.public_url)

    def token(self, row: Row) -> str:
        ids = _IDS.pack(*row)
        nonce = hmac.new(self._nonce_key, ids, hashlib.sha256).digest()[:_NONCE]
        sealed = self._aead.encrypt(nonce, ids, _PURPOSE)
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def url(self, row: Row) -> str:
        return self._base + self.token(row)

    def open(self, token: str) -> Row | None:
        """The row of ``token``; None for anything this service did not seal (no detail why)."""
        if len(token) > 64:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _TOKEN_BYTES:
            return None
        try:
            ids = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _PURPOSE)
        except InvalidTag:
            return None
        return Row(*_IDS.unpack(ids))
