"""Everything the auth service reads from the environment."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, ClassVar, Literal

import msgspec

from mailmerger_auth.domain import is_plain_address
from mailmerger_shared.settings import (
    DEV_GOOGLE_CLIENT_SECRET,
    DEV_SYSTEM_MAIL_ADDRESS,
    DEV_SYSTEM_MAIL_REFRESH_TOKEN,
    HttpServiceSettings,
    QueueCredential,
    SenderCredential,
    Settings,
)

Positive = Annotated[int, msgspec.Meta(gt=0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]

GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"

# Development only: a published key, so that `make run` works without configuration. The app logs
# a warning while it is the active key; outside development (MM_ENVIRONMENT) start-up refuses it,
# so every real deployment sets MM_AUTH_ENCRYPTION_KEYS.
DEV_ENCRYPTION_KEY_ID = "dev"
DEV_ENCRYPTION_KEY = "bWFpbG1lcmdlci1kZXYtb25seS1lbmNyeXB0aW9uLWs"  # base64url of 32 bytes
_MAKE_A_KEY = "python -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"


class AccountSettings(Settings, frozen=True, kw_only=True):
    """Passwords, token lifetimes, login throttling and where the browser is sent back to."""

    prefix: ClassVar[str] = "MM_AUTH_"

    access_token_ttl_seconds: Annotated[int, msgspec.Meta(gt=0, le=900)] = 900
    refresh_token_ttl_seconds: Positive = 7 * 24 * 3600
    # Two tabs refreshing at once present the same refresh token: the later one, within this long of
    # the rotation, gets the current token again instead of revoking the session as a reuse.
    refresh_reuse_grace_seconds: Annotated[float, msgspec.Meta(ge=0, le=120)] = 30.0
    # A session (one refresh-token family) ends this long after sign-in, however often it renews.
    session_lifetime_seconds: Positive = 30 * 24 * 3600
    # Deleting an account needs its password, or (an account that signs in with Google only) a
    # session signed in this recently: a stolen access token alone cannot delete anyone.
    reauthentication_window_seconds: Positive = 600

    signing_key_rotation_seconds: Positive = 30 * 24 * 3600
    # A new key is published this long before it signs, so every JWKS cache has seen it first.
    signing_key_publish_ahead_seconds: NonNegative = 120

    # argon2id, RFC 9106's second recommended profile; the bounds are OWASP's minimum.
    argon2_memory_kib: Annotated[int, msgspec.Meta(ge=19 * 1024)] = 64 * 1024
    argon2_time_cost: Annotated[int, msgspec.Meta(ge=2)] = 3
    argon2_parallelism: Positive = 4

    login_attempts_per_account: Positive = 10
    login_attempts_per_address: Positive = 100
    login_window_seconds: Positive = 15 * 60
    # Sign-ups and link requests mail an address: at most this many per address per login window.
    mail_requests_per_account: Positive = 5
    # How many reverse proxies append to X-Forwarded-For in front of this service (nginx: 1).
    # 0 means the socket's peer address is the client's.
    trusted_proxy_hops: NonNegative = 0

    frontend_url: str = "http://localhost:5173"
    connect_ticket_ttl_seconds: Annotated[int, msgspec.Meta(gt=0, le=600)] = 300
    oauth_state_ttl_seconds: Annotated[int, msgspec.Meta(gt=0, le=600)] = 600
    # Links mailed to prove an address is its owner's: single-use, stored hashed, and short-lived.
    email_confirmation_ttl_seconds: Annotated[int, msgspec.Meta(gt=0, le=7 * 24 * 3600)] = 24 * 3600
    password_reset_ttl_seconds: Annotated[int, msgspec.Meta(gt=0, le=24 * 3600)] = 3600


class EncryptionSettings(Settings, frozen=True, kw_only=True):
    """AES-256-GCM keys for secrets at rest (Google tokens, signing keys), by key id.

    ``keys`` is a JSON object of key id to base64url-encoded 32-byte key. Rotating: add a new key,
    make it active, run the re-encryption, then drop the old key.
    """

    prefix: ClassVar[str] = "MM_AUTH_ENCRYPTION_"

    keys: dict[str, str] = msgspec.field(default_factory=lambda: {DEV_ENCRYPTION_KEY_ID: DEV_ENCRYPTION_KEY})
    active_key: str = DEV_ENCRYPTION_KEY_ID

    def __post_init__(self) -> None:
        if self.active_key not in self.keys:
            raise ValueError(f"the active key {self.active_key!r} is not among the keys")
        for key_id, raw in self.key_bytes().items():
            if len(raw) != 32:
                raise ValueError(f"key {key_id!r} must be 32 bytes, not {len(raw)}")

    def published_defaults(self) -> list[str]:
        problems = []
        if self.active_key == DEV_ENCRYPTION_KEY_ID:
            problems.append(
                f"{self.variable('active_key')} is {DEV_ENCRYPTION_KEY_ID!r}, the published development "
                "key's id; add a key of your own to MM_AUTH_ENCRYPTION_KEYS and make it the active key"
            )
        published = [
            key_id for key_id, encoded in self.keys.items() if encoded.rstrip("=") == DEV_ENCRYPTION_KEY
        ]
        if published:
            problems.append(
                f"{self.variable('keys')} holds the published development key (id {', '.join(published)}); "
                f"generate one ({_MAKE_A_KEY}), make it active, re-encrypt, and remove the published one"
            )
        return problems

    def key_bytes(self) -> dict[str, bytes]:
        decoded = {}
        for key_id, encoded in self.keys.items():
            try:
                decoded[key_id] = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                raise ValueError(f"key {key_id!r} is not base64url") from None
        return decoded


class GoogleSettings(Settings, frozen=True, kw_only=True):
    """The Google OAuth client. Without a client id, the Google routes answer 503.

    Redirect URIs default to the public URL's callback paths; each must be registered with Google
    exactly as written.
    """

    prefix: ClassVar[str] = "MM_GOOGLE_"

    client_id: str | None = None
    client_secret: str | None = None
    discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    redirect_uri: str | None = None
    legacy_redirect_uri: str | None = None
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "email", "profile", GMAIL_SEND])
    # Reading metadata (reply and bounce detection) is a restricted scope: a deployment whose
    # Google app passed verification for it turns this on, and users then opt in per connection.
    metadata_tier: bool = False
    metadata_scopes: list[str] = msgspec.field(default_factory=lambda: [GMAIL_METADATA])
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Refresh a Gmail access token this long before it expires.
    refresh_margin_seconds: NonNegative = 300

    def published_defaults(self) -> list[str]:
        if self.client_secret != DEV_GOOGLE_CLIENT_SECRET:
            return []
        return [
            f"{self.variable('client_secret')} is the Google emulator's published development secret; "
            "set MM_GOOGLE_CLIENT_ID and MM_GOOGLE_CLIENT_SECRET to your Google OAuth client's"
        ]


class SystemMailSettings(Settings, frozen=True, kw_only=True):
    """The system's own mail channel: address confirmations and password resets.

    ``gmail`` sends through one Gmail account connected for the system (its refresh token, for the
    deployment's Google OAuth client) with the Gmail API at ``MM_GMAIL_API_URL``; in development
    that is the Google emulator's seeded system account, whose mailbox page shows every letter.
    ``smtp`` sends through an operator's SMTP relay instead.
    """

    prefix: ClassVar[str] = "MM_SYSTEM_MAIL_"

    transport: Literal["gmail", "smtp"] = "gmail"
    from_address: str = DEV_SYSTEM_MAIL_ADDRESS
    gmail_refresh_token: str = DEV_SYSTEM_MAIL_REFRESH_TOKEN
    gmail_api_url: str = "https://gmail.googleapis.com"
    smtp_host: str | None = None
    smtp_port: Annotated[int, msgspec.Meta(gt=0, lt=65536)] = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0

    def __post_init__(self) -> None:
        if not is_plain_address(self.from_address):
            raise ValueError(f"from_address {self.from_address!r} must be a plain ASCII email address")
        if self.transport == "smtp" and not self.smtp_host:
            raise ValueError("the smtp transport needs smtp_host (MM_SYSTEM_MAIL_SMTP_HOST)")

    def published_defaults(self) -> list[str]:
        if self.transport != "gmail" or self.gmail_refresh_token != DEV_SYSTEM_MAIL_REFRESH_TOKEN:
            return []
        return [
            f"{self.variable('gmail_refresh_token')} is the Google emulator's published system-mail token; "
            "connect a Gmail account for the system and set its refresh token (or set "
            f"{self.variable('transport')}=smtp and the MM_SYSTEM_MAIL_SMTP_* settings)"
        ]


class AuthSettings(HttpServiceSettings, frozen=True, kw_only=True):
    # The callers of auth's internal routes: the queue (connect tickets), the sender (access tokens).
    queue_credential: QueueCredential
    sender_credential: SenderCredential
    auth: AccountSettings
    encryption: EncryptionSettings
    google: GoogleSettings
    system_mail: SystemMailSettings
