"""Rules and value types of accounts, sessions and connected Gmail accounts (no I/O)."""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from mailmerger_shared.errors import Invalid
from mailmerger_shared.header_text import clean_header_text

MIN_PASSWORD_LENGTH = 8
# Long enough for any passphrase or password manager; short enough that hashing stays bounded.
MAX_PASSWORD_LENGTH = 256
MAX_NAME_LENGTH = 200

# The service reads time through this seam, so tests can move it.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(raw: str) -> str:
    """The form an email is stored and looked up in: NFKC, trimmed, lower-case.

    Lower-casing the local part is what users expect of every mainstream provider, and one
    spelling per address is what makes the unique constraint mean "one account per address".
    """
    email = unicodedata.normalize("NFKC", raw).strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid("the email address is not valid", extra={"field": "email"})
    return email


# An address every mail transport takes as it is: ASCII, no quoting, no comments, no blanks. The
# system's letters are sent only to and from such addresses (adapters/system_mail.py).
_PLAIN_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def is_plain_address(address: str) -> bool:
    return len(address) <= 254 and _PLAIN_ADDRESS.fullmatch(address) is not None


def check_password_policy(password: str) -> None:
    """NIST SP 800-63B: a length floor and a generous ceiling, no composition rules."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", extra={"field": "password"}
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters", extra={"field": "password"}
        )


def clean_name(raw: str, *, fallback: str) -> str:
    name = " ".join(raw.split())[:MAX_NAME_LENGTH]
    return name or fallback


def clean_display_name(raw: object) -> str | None:
    """A Google profile name made fit to be the From display name of the account's mail.

    The user cannot fix Google's data, so it is cleaned, not refused: line breaks become spaces,
    other controls and Unicode separators go, blanks collapse, and at most ``MAX_NAME_LENGTH``
    characters stay (the shared header-text rule); None when nothing is left, or no name was given.
    """
    if not isinstance(raw, str):
        return None
    return clean_header_text(raw, max_length=MAX_NAME_LENGTH) or None


def digest(secret: str) -> bytes:
    """How single-use secrets (OAuth states, tickets, browser bindings) are stored and compared."""
    return hashlib.sha256(secret.encode()).digest()


class FamilyRevocation(enum.StrEnum):
    """Why a session ended."""

    LOGOUT = "logout"
    REUSE = "refresh_token_reused"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a reason, not a password)
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a reason, not a password)
    TAKEN_OVER = "taken_over_by_address_owner"


class GmailAccountState(enum.StrEnum):
    CONNECTED = "connected"
    RECONNECT_REQUIRED = "reconnect_required"
    DISCONNECTED = "disconnected"


class Purpose(enum.StrEnum):
    """What a Google authorization is for.

    ``signup`` finds or creates the account of the Google identity; ``signin`` only finds it
    (by Google subject, then by verified email); ``connect`` adds the Google account as a Gmail
    sender of an already known user (named by a connect ticket).
    """

    SIGNUP = "signup"
    SIGNIN = "signin"
    CONNECT = "connect"


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in session as the client receives it."""

    user_id: int
    user_name: str
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime


class RefreshClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified refresh token says; whether it may still be used is the family's to decide."""

    user_id: int
    family_id: uuid.UUID
    jti: uuid.UUID
    expires_at: datetime


class GoogleIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """The verified claims of a Google ID token."""

    sub: str
    email: str
    email_verified: bool
    name: str | None = None  # the profile name, cleaned for mail headers (clean_display_name)


class GoogleGrant(msgspec.Struct, frozen=True, kw_only=True):
    """What Google's token endpoint handed out for one authorization or refresh."""

    access_token: str
    expires_at: datetime
    scopes: list[str]
    refresh_token: str | None = None
    id_token: str | None = None
