"""Keys derived from the queue's one secret key (``MM_COMPLIANCE_SECRET_KEY``), one per purpose.

HKDF-SHA256 with the purpose as its ``info``: no two uses (unsubscribe tokens, their nonces,
webhook secrets) ever share a key, and one setting is all an operator has to keep.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret_key: bytes, purpose: bytes) -> bytes:
    """The 32-byte key of ``purpose``."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret_key)
