"""Secrets at rest: AES-GCM sealing bound to its context, key rotation by re-sealing, and the
settings that refuse weak or inconsistent keys and parameters."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailmerger_auth import models
from mailmerger_auth.crypto import SealedSecretError, Sealer, gmail_token_context
from mailmerger_auth.domain import GoogleGrant, GoogleIdentity
from mailmerger_auth.gmail_accounts import save_connection
from mailmerger_auth.gmail_tokens import GmailTokens
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.rekeying import reseal_secrets
from mailmerger_auth.settings import AccountSettings, EncryptionSettings
from mailmerger_auth.signing_keys import KeyPolicy, SigningKeys
from mailmerger_shared.db import transaction
from mailmerger_shared.settings import SettingsError, load
from tests.auth.support import MovableClock, Sessions

OLD, NEW = os.urandom(32), os.urandom(32)
POLICY = KeyPolicy(
    rotate_after=timedelta(days=30),
    publish_ahead=timedelta(minutes=2),
    published_after_retirement=timedelta(minutes=15),
    verifies_after_retirement=timedelta(days=30),
)


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def test_a_sealed_token_opens_only_in_its_own_context() -> None:
    """Another user, another account or the other field: the ciphertext does not open."""
    sealer = Sealer({"k": OLD}, "k")
    sealed = sealer.seal(b"1//refresh", context=gmail_token_context(1, 10, "refresh_token"))
    assert (
        sealer.open(sealed, key_id="k", context=gmail_token_context(1, 10, "refresh_token")) == b"1//refresh"
    )
    for context in (
        gmail_token_context(2, 10, "refresh_token"),
        gmail_token_context(1, 11, "refresh_token"),
        gmail_token_context(1, 10, "access_token"),
    ):
        with pytest.raises(SealedSecretError):
            sealer.open(sealed, key_id="k", context=context)


def test_a_tampered_ciphertext_or_an_unknown_key_does_not_open() -> None:
    """One flipped bit, or a key id the keyring does not hold, is refused."""
    sealer = Sealer({"k": OLD}, "k")
    context = gmail_token_context(1, 10, "access_token")
    sealed = bytearray(sealer.seal(b"ya29.token", context=context))
    sealed[-1] ^= 1
    with pytest.raises(SealedSecretError):
        sealer.open(bytes(sealed), key_id="k", context=context)
    with pytest.raises(SealedSecretError):
        sealer.open(sealer.seal(b"x", context=context), key_id="gone", context=context)


async def test_resealing_moves_every_secret_to_the_active_key(private_sessions: Sessions) -> None:
    """After re-sealing, a keyring without the old key opens Gmail tokens and signing keys alike."""
    clock = MovableClock()
    old, both, new_only = (
        Sealer({"old": OLD}, "old"),
        Sealer({"old": OLD, "new": NEW}, "new"),
        Sealer({"new": NEW}, "new"),
    )
    async with transaction(private_sessions) as session:
        for table in (models.gmail_accounts, models.users, models.signing_keys):
            await session.execute(table.delete())
        await SigningKeys(old, POLICY, clock).maintain(session)
        user_id = (
            await session.execute(
                models.users.insert()
                .values(email="rekey@example.com", name="Rekey", created_at=clock())
                .returning(models.users.c.id)
            )
        ).scalar_one()
        account_id = await save_connection(
            session,
            old,
            user_id=user_id,
            identity=GoogleIdentity(sub="1234", email="rekey@gmail.com", email_verified=True),
            grant=GoogleGrant(
                access_token="ya29.rekey",
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                scopes=["https://www.googleapis.com/auth/gmail.send"],
                refresh_token="1//rekey",
            ),
            now=clock(),
        )

    assert await reseal_secrets(private_sessions, both) == 2
    assert await reseal_secrets(private_sessions, both) == 0

    async with transaction(private_sessions) as session:
        key_ids = set((await session.execute(select(models.gmail_accounts.c.encryption_key_id))).scalars())
        key_ids |= set((await session.execute(select(models.signing_keys.c.encryption_key_id))).scalars())
        assert key_ids == {"new"}
        assert (await SigningKeys(new_only, POLICY, clock).current(session)).kid
    tokens = GmailTokens(private_sessions, None, new_only, clock, margin=timedelta(minutes=5))
    assert (await tokens.access_token(account_id)).access_token == "ya29.rekey"


@pytest.mark.slow  # the production hash costs seconds by design
async def test_the_production_password_parameters_hash_and_verify() -> None:
    """The default argon2id parameters (64 MiB, t=3, p=4) produce a hash that verifies."""
    passwords = Passwords.from_settings(AccountSettings())
    stored = await passwords.hash("a long and careful passphrase")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await passwords.verify(stored, "a long and careful passphrase")
    assert not await passwords.verify(stored, "a long and careless passphrase")


async def test_a_hash_made_with_other_parameters_needs_a_rehash() -> None:
    """A hash from weaker parameters is flagged; one from the current parameters is not."""
    weaker = Passwords(memory_kib=1024, time_cost=1, parallelism=1)  # cheap: the costs only differ
    current = Passwords(memory_kib=1024, time_cost=2, parallelism=1)
    old_hash = await weaker.hash("passphrase")
    assert await current.verify(old_hash, "passphrase")
    assert current.needs_rehash(old_hash)
    assert not current.needs_rehash(await current.hash("passphrase"))


async def test_verifying_without_a_stored_hash_fails_after_doing_the_same_work() -> None:
    """No account (or a Google-only one): verify answers False, having checked a dummy hash."""
    passwords = Passwords(memory_kib=19 * 1024, time_cost=2, parallelism=1)
    assert await passwords.verify(None, "anything") is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MM_AUTH_ARGON2_MEMORY_KIB", "4096"),
        ("MM_AUTH_ARGON2_TIME_COST", "1"),
        ("MM_AUTH_ACCESS_TOKEN_TTL_SECONDS", "3600"),
        ("MM_AUTH_OAUTH_STATE_TTL_SECONDS", "3600"),
    ],
)
def test_settings_refuse_weak_parameters(variable: str, value: str) -> None:
    """argon2 below OWASP's minimum, access tokens over 15 minutes, states over 10 minutes: refused."""
    with pytest.raises(SettingsError):
        load(AccountSettings, {variable: value})


@pytest.mark.parametrize(
    "env",
    [
        {"MM_AUTH_ENCRYPTION_KEYS": f'{{"a": "{_b64(OLD)}"}}', "MM_AUTH_ENCRYPTION_ACTIVE_KEY": "b"},
        {"MM_AUTH_ENCRYPTION_KEYS": f'{{"a": "{_b64(OLD[:16])}"}}', "MM_AUTH_ENCRYPTION_ACTIVE_KEY": "a"},
        {"MM_AUTH_ENCRYPTION_KEYS": '{"a": "not base64!"}', "MM_AUTH_ENCRYPTION_ACTIVE_KEY": "a"},
    ],
)
def test_settings_refuse_an_inconsistent_keyring(env: dict[str, str]) -> None:
    """The active key must be in the keyring, and every key 32 bytes of base64url."""
    with pytest.raises(SettingsError):
        load(EncryptionSettings, env)
