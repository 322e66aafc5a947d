"""Bundles as an encoding: every message keeps its own envelope, and a bad bundle is refused whole."""

from __future__ import annotations

import msgspec
import pytest

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import bundle


def _items(n: int) -> list[tuple[c.Message, c.Envelope]]:
    return [
        (c.UserDeleted(user_id=i), c.Envelope.new(c.UserDeleted.TAG, correlation_id=f"req-{i}"))
        for i in range(n)
    ]


def test_a_bundle_round_trips_messages_and_envelopes_in_order() -> None:
    items = _items(3)
    assert bundle.decode(c.UserDeleted.TAG, bundle.encode(items)) == items


def test_a_bundle_carries_one_tag() -> None:
    mixed = [
        *_items(1),
        (c.AttachmentDeleted(user_id=1, attachment_id=2), c.Envelope.new("attachment_deleted.v1")),
    ]
    with pytest.raises(ValueError, match="one tag"):
        bundle.encode(mixed)


def test_a_message_routed_under_another_tag_is_refused() -> None:
    """The routing key is the bundle's tag: a member claiming another tag must not slip past bindings."""
    body = bundle.encode(_items(2))
    with pytest.raises(msgspec.ValidationError, match="in a bundle of"):
        bundle.decode(c.AttachmentDeleted.TAG, body)


@pytest.mark.parametrize(
    "body",
    [b"[]", b"{}", b"not json", b'[[{"id": "x"}, {}]]'],
    ids=["empty", "not a list", "not json", "bad envelope"],
)
def test_a_malformed_bundle_raises_a_decode_error(body: bytes) -> None:
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        bundle.decode(c.UserDeleted.TAG, body)


def test_a_member_whose_payload_does_not_match_its_tag_fails_the_bundle() -> None:
    [(_, envelope)] = _items(1)
    body = msgspec.json.encode([[envelope, msgspec.Raw(b'{"user_id": "not a number"}')]])
    with pytest.raises(msgspec.ValidationError):
        bundle.decode(c.UserDeleted.TAG, body)
