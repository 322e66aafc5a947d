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


_ATTACHMENT_PREFIX = "ANGjdJ"


def attachment_id(message_id: str, part_id: str) -> str:
    """An opaque id for one attachment part (Gmail's start with "ANGjdJ")."""
    return _ATTACHMENT_PREFIX + _b64url(f"{message_id}:{part_id}".encode()).rstrip("=")


def find_attachment(message: StoredMessage, attachment: str) -> Part | None:
    """The attachment part ``attachment`` names in ``message``, or None."""

    def walk(part: Part) -> Part | None:
        if part.is_attachment and attachment_id(message.id, part.part_id) == attachment:
            return part
        return next((found for child in part.parts if (found := walk(child)) is not None), None)

    return walk(message.content().tree)


def _part(part: Part, message_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"size": len(part.body)}
    if part.is_attachment:
        body = {"attachmentId": attachment_id(message_id, part.part_id), "size": len(part.body)}
    elif part.body:
        body["data"] = _b64url(part.body)
    rendered: dict[str, Any] = {
        "partId": part.part_id,
        "mimeType": part.mime_type,
        "filename": part.filename,
        "headers": [{"name": name, "value": value} for name, value in part.headers],
        "body": body,
    }
    if part.parts:
        rendered["parts"] = [_part(child, message_id) for child in part.parts]
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
        rendered["payload"] = _part(message.content().tree, message.id)
    return rendered


def message_reference(message: StoredMessage) -> dict[str, Any]:
    """What ``messages.send`` answers and ``messages.list`` lists."""
    return {"id": message.id, "threadId": message.thread_id}


def render_thread(
    messages: list[StoredMessage], message_format: str, metadata_headers: list[str]
) -> dict[str, Any]:
    """``threads.get``: the thread's id, its latest history id and its messages, oldest first."""
    return {
        "id": messages[0].thread_id,
        "historyId": str(max(message.history_id for message in messages)),
        "messages": [render_message(message, message_format, metadata_headers) for message in messages],
    }


# The system labels every Gmail mailbox has (users.labels.list), with Gmail's visibility fields.
SYSTEM_LABELS = (
    "CHAT",
    "SENT",
    "INBOX",
    "IMPORTANT",
    "TRASH",
    "DRAFT",
    "SPAM",
    "CATEGORY_FORUMS",
    "CATEGORY_UPDATES",
    "CATEGORY_PERSONAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_SOCIAL",
    "STARRED",
    "UNREAD",
)
# Gmail shows these in the message and label lists (the others carry no visibility fields).
_LISTED = ("INBOX", "SENT", "UNREAD", "STARRED", "IMPORTANT", "DRAFT", "SPAM", "TRASH")


def system_labels() -> list[dict[str, Any]]:
    labels: list[dict[str, Any]] = []
    for label in SYSTEM_LABELS:
        entry: dict[str, Any] = {"id": label, "name": label, "type": "system"}
        if label in _LISTED:
            entry["messageListVisibility"] = "hide" if label in ("SPAM", "TRASH") else "show"
            entry["labelListVisibility"] = "labelShow"
        labels.append(entry)
    return labels
