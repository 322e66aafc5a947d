"""Signing-key rotation, in the private database (rotating would disturb the shared app)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailmerger_auth import models
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.settings import EncryptionSettings
from mailmerger_auth.signing_keys import KeyPolicy, SigningKeys
from mailmerger_shared.db import transaction
from tests.auth.support import MovableClock, Sessions

POLICY = KeyPolicy(
    rotate_after=timedelta(days=30),
    publish_ahead=timedelta(minutes=2),
    published_after_retirement=timedelta(minutes=15, seconds=10),
    verifies_after_retirement=timedelta(days=30, seconds=10),
)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def keys(private_sessions: Sessions, clock: MovableClock) -> SigningKeys:
    async with transaction(private_sessions) as session:
        await session.execute(models.signing_keys.delete())
    store = SigningKeys(Sealer.from_settings(EncryptionSettings()), POLICY, clock)
    store.bind(private_sessions)
    return store


async def _signer(keys: SigningKeys, private_sessions: Sessions) -> str:
    async with transaction(private_sessions) as session:
        return (await keys.current(session)).kid


async def _published(keys: SigningKeys) -> list[str]:
    return [entry["kid"] for entry in (await keys.published_jwks())["keys"]]


async def test_first_upkeep_creates_one_key_that_signs_at_once(
    keys: SigningKeys, private_sessions: Sessions
) -> None:
    """With no key, upkeep creates one; it signs immediately and is the only one published."""
    async with transaction(private_sessions) as session:
        await keys.maintain(session)
    kid = await _signer(keys, private_sessions)
    assert await _published(keys) == [kid]


async def test_replicas_starting_together_create_a_single_key(
    keys: SigningKeys, private_sessions: Sessions
) -> None:
    """Concurrent upkeep passes serialise on the rotation lock: one first key, not several."""

    async def upkeep() -> None:
        async with transaction(private_sessions) as session:
            await keys.maintain(session)

    await asyncio.gather(*(upkeep() for _ in range(4)))
    async with transaction(private_sessions) as session:
        assert (
            await session.execute(select(func.count()).select_from(models.signing_keys))
        ).scalar_one() == 1


async def test_rotation_publishes_ahead_then_retires_the_old_key_after_its_tokens_expired(
    keys: SigningKeys, private_sessions: Sessions, clock: MovableClock
) -> None:
    """A new key is published before it signs; the old one stays published 15 min after it stops
    signing, verifies refresh tokens for a session lifetime, then is deleted."""
    async with transaction(private_sessions) as session:
        await keys.maintain(session)
    old = await _signer(keys, private_sessions)
    async with transaction(private_sessions) as session:
        new = await keys.rotate(session)

    assert set(await _published(keys)) == {old, new}
    assert await _signer(keys, private_sessions) == old  # not yet: caches must see the new key first

    clock.shift(timedelta(minutes=2, seconds=1))
    assert await _signer(keys, private_sessions) == new
    assert set(await _published(keys)) == {old, new}  # access tokens signed by old are still valid

    clock.shift(timedelta(minutes=16))
    assert await _published(keys) == [new]
    async with transaction(private_sessions) as session:
        assert await keys.verification_key(session, old) is not None  # its refresh tokens still renew

    clock.shift(timedelta(days=30))
    async with transaction(private_sessions) as session:
        await keys.maintain(session)
        assert await keys.verification_key(session, old) is None


async def test_upkeep_rotates_a_key_older_than_the_rotation_period(
    keys: SigningKeys, private_sessions: Sessions, clock: MovableClock
) -> None:
    """After 30 days, upkeep starts the next key (published ahead, like any rotation)."""
    async with transaction(private_sessions) as session:
        await keys.maintain(session)
    first = await _signer(keys, private_sessions)
    clock.shift(timedelta(days=29))
    async with transaction(private_sessions) as session:
        await keys.maintain(session)
    assert await _published(keys) == [first]
    clock.shift(timedelta(days=1, seconds=1))
    async with transaction(private_sessions) as session:
        await keys.maintain(session)
    published = await _published(keys)
    assert len(published) == 2
    clock.shift(timedelta(minutes=3))
    assert await _signer(keys, private_sessions) != first
