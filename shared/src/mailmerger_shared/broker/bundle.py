"""Bundles: several messages of one tag carried by one AMQP message.

RabbitMQ's cost is per AMQP message, not per byte: a quorum queue appends, replicates and confirms
each one, and the consumer acks each. In the send pipeline (a command and an outcome per email)
that cost was about as large as building and sending the email itself. A bundle carries up to
``bundle_size`` messages of one tag, each with its own envelope, so routing by tag, correlation
ids and per-message idempotency are what they were; only the unit the broker handles is bigger.

A consumer handles a bundle's messages concurrently and acks the bundle once all of them
succeeded; the ones that failed go back to the queue alone (see ``consumer``). A message published
alone is still accepted: a bundle is an encoding, not a contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from mailmerger_shared import contracts as c

CONTENT_TYPE = "application/vnd.mailmerger.bundle+json"


class _Item(msgspec.Struct, frozen=True, array_like=True):
    envelope: c.Envelope
    message: msgspec.Raw


_decoder = msgspec.json.Decoder(list[_Item])


def encode(items: Sequence[tuple[c.Message, c.Envelope]]) -> bytes:
    """One body for ``items``, which must all share one tag (the bundle's routing key)."""
    tags = {envelope.tag for _, envelope in items}
    if len(tags) != 1:
        raise ValueError(f"a bundle carries messages of one tag, not {sorted(tags)}")
    return msgspec.json.encode(
        [_Item(envelope, msgspec.Raw(c.encode(message))) for message, envelope in items]
    )


def decode(tag: str, body: bytes) -> list[tuple[c.Message, c.Envelope]]:
    """The messages of a bundle routed as ``tag``; raises ``msgspec`` errors if any is malformed."""
    items = _decoder.decode(body)
    if not items:
        raise msgspec.ValidationError("an empty bundle")
    decoded: list[tuple[c.Message, c.Envelope]] = []
    for item in items:
        if item.envelope.tag != tag:
            raise msgspec.ValidationError(f"a {item.envelope.tag!r} message in a bundle of {tag!r}")
        decoded.append((c.decode(tag, item.message), item.envelope))
    return decoded
