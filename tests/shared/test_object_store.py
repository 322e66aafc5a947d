"""The attachments bucket's contract: the key layout storage writes and the sender reads, and one client."""

from __future__ import annotations

import pytest

from mailmerger_shared.object_store import client_config, new_object_key, owner_of, s3_client, user_prefix
from mailmerger_shared.settings import ObjectStoreSettings


def test_every_key_of_a_user_lies_under_their_prefix() -> None:
    """A new key starts with the user's prefix, so purging a user by prefix removes all of theirs."""
    key = new_object_key(42)
    assert user_prefix(42) == "users/42/"
    assert key.startswith(user_prefix(42))


def test_keys_are_unguessable_and_unique() -> None:
    """Each new key is 32 random hex digits below the prefix, never the same twice."""
    keys = {new_object_key(7) for _ in range(100)}
    assert len(keys) == 100
    assert all(len(key.removeprefix("users/7/")) == 32 for key in keys)


def test_a_user_prefix_never_contains_another_users_keys() -> None:
    """User 1's prefix is not a prefix of user 12's keys: the trailing slash keeps them apart."""
    assert not new_object_key(12).startswith(user_prefix(1))


def test_the_owner_is_read_back_from_a_key() -> None:
    """``owner_of`` returns the user a key was made for."""
    assert owner_of(new_object_key(9_000_000_001)) == 9_000_000_001


@pytest.mark.parametrize(
    "key",
    ["", "users/1/", "users/0/" + "a" * 32, "users/x/" + "a" * 32, "u1/resume.pdf", "users/1/" + "A" * 32],
)
def test_a_key_of_another_shape_has_no_owner(key: str) -> None:
    """Anything ``new_object_key`` cannot have made names no user."""
    assert owner_of(key) is None


def test_every_client_is_configured_for_s3_compatible_stores() -> None:
    """SigV4, the configured addressing style, and checksums only where required (older MinIO, Supabase)."""
    config = client_config(ObjectStoreSettings(addressing_style="virtual"))
    assert config.signature_version == "s3v4"
    assert config.s3 == {"addressing_style": "virtual"}
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


async def test_a_client_opens_without_connecting() -> None:
    """Opening a client sends nothing: a store that is down fails the first request, not the start."""
    settings = ObjectStoreSettings(
        endpoint_url="http://127.0.0.1:9", access_key_id="k", secret_access_key="s"
    )
    async with s3_client(settings, endpoint_url="http://127.0.0.2:9") as client:
        assert client.meta.endpoint_url == "http://127.0.0.2:9"
