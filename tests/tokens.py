"""Access tokens for tests of services other than auth: a local Ed25519 key and its JWKS."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "mailmerger-auth"
AUDIENCE = "mailmerger"


class TestSigner:
    """Signs tokens the way auth does; ``jwks`` is what auth would publish."""

    __test__ = False  # not a test class

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private_key = Ed25519PrivateKey.generate()

    @property
    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    async def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def token(self, user_id: int = 1, *, typ: str = "access", ttl: int = 300, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "typ": typ,
        }
        claims.update(overrides)
        headers = {"kid": self.kid}
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers=headers)

    def bearer(self, user_id: int = 1) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}
