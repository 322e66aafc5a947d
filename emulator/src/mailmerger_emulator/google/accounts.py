"""Test users: the Google accounts that sign in on the consent page and own a Gmail mailbox.

Emails are case-insensitive and stored lower-cased. ``sub`` is a 21-digit number like Google's
account ids and never changes for an account, even when its name does. It is derived from the
address, so an emulator that restarts (its state lives in memory) still names the account it knew
with the same id, as Google would: reconnecting it renews the app's connection instead of adding a
second account of the same address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class AccountStatus(StrEnum):
    """What Gmail says about the account's mailbox before any quota or message check."""

    ACTIVE = "active"
    # The account has no Gmail (never provisioned, or Gmail switched off for it).
    MAIL_SERVICE_NOT_ENABLED = "mail_service_not_enabled"
    # A Workspace admin blocked third-party Gmail apps.
    DOMAIN_POLICY = "domain_policy"


@dataclass
class TestUser:
    __test__ = False  # a domain type, not a pytest test class

    email: str
    name: str
    sub: str
    status: AccountStatus = AccountStatus.ACTIVE
    # Per-user overrides of the settings' quota figures; None means "use the default".
    units_per_minute: int | None = None
    daily_send_cap: int | None = None

    @property
    def given_name(self) -> str:
        return self.name.split(" ", 1)[0]

    @property
    def family_name(self) -> str:
        parts = self.name.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def looks_like_email(email: str) -> bool:
    local, _, domain = email.partition("@")
    return bool(local) and "." in domain and " " not in email and not domain.startswith(".")


def name_from_email(email: str) -> str:
    """A readable display name for an account created without one (``jane.doe@…`` → Jane Doe)."""
    local = email.partition("@")[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or email


class AccountExists(Exception):
    pass


class Directory:
    """All test users, by normalized email."""

    def __init__(self) -> None:
        self._users: dict[str, TestUser] = {}

    def create(self, email: str, name: str | None = None) -> TestUser:
        key = normalize_email(email)
        if key in self._users:
            raise AccountExists(key)
        user = TestUser(email=key, name=name or name_from_email(key), sub=_sub_of(key))
        self._users[key] = user
        return user

    def get(self, email: str) -> TestUser | None:
        return self._users.get(normalize_email(email))

    def get_or_create(self, email: str, name: str | None = None) -> TestUser:
        return self.get(email) or self.create(email, name)

    def all(self) -> list[TestUser]:
        return sorted(self._users.values(), key=lambda user: user.email)


def _sub_of(email: str) -> str:
    digest = int.from_bytes(hashlib.sha256(email.encode()).digest()[:16], "big")
    return str(10**20 + digest % (9 * 10**20))
