"""The Gmail ``Message`` resource in its four formats (minimal, metadata, raw, full).

Header values are given decoded (RFC 2047 words turned into text), as Gmail does.
"""

from __future__ import annotations

import base64
from typing import Any

from mailmerger_emulator.google.content import Part
from mailmerger_emulator.google.mailbox import StoredMessage
from mailmerger_emulator.google.mime import decode_header_value

FORMATS = ("minimal", "metadata", "raw", "full")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _minimal(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": list(message.label_ids),
        "snippet": message.content().snippet,
        "sizeEstimate": len(message.envelope.raw),
        "historyId": str(message.history_id),
        "internalDate": str(message.internal_date_ms),
    }


def _headers(pairs: tuple[tuple[str, str], ...], only: set[str] | None) -> list[dict[str, str]]:
    return [
        {"name": name, "value": decode_header_value(value)}
        for name, value in pairs
        if only is None or name.lower() in only
    ]


def _part(part: Part) -> dict[str, Any]:
    body: dict[str, Any] = {"size": len(part.body)}
    if part.body and not part.is_attachment:
        body["data"] = _b64url(part.body)
    rendered: dict[str, Any] = {
        "partId": part.part_id,
        "mimeType": part.mime_type,
        "filename": part.filename,
        "headers": [{"name": name, "value": value} for name, value in part.headers],
        "body": body,
    }
    if part.parts:
        rendered["parts"] = [_part(child) for child in part.parts]
    return rendered


def render_message(
    message: StoredMessage, message_format: str, metadata_headers: list[str]
) -> dict[str, Any]:
    rendered = _minimal(message)
    if message_format == "raw":
        rendered["raw"] = _b64url(message.envelope.raw)
    elif message_format == "metadata":
        only = {name.lower() for name in metadata_headers} or None
        rendered["payload"] = {
            "partId": "",
            "mimeType": message.content().tree.mime_type,
            "filename": "",
            "headers": _headers(message.envelope.headers, only),
            "body": {"size": 0},
        }
    elif message_format == "full":
        rendered["payload"] = _part(message.content().tree)
    return rendered


def message_reference(message: StoredMessage) -> dict[str, Any]:
    """What ``messages.send`` answers and ``messages.list`` lists."""
    return {"id": message.id, "threadId": message.thread_id}
