"""Delivered messages as tests and people want to read them: decoded, with their recipients."""

from __future__ import annotations

from typing import Any

from mailmerger_emulator.google.mailbox import StoredMessage
from mailmerger_emulator.google.mime import decode_header_value


def message_detail(message: StoredMessage) -> dict[str, Any]:
    envelope = message.envelope
    content = message.content()
    return {
        "id": message.id,
        "threadId": message.thread_id,
        "user": message.owner,
        "labelIds": list(message.label_ids),
        "rfc822MessageId": envelope.message_id,
        "internalDate": message.internal_date_ms,
        "historyId": message.history_id,
        "sizeEstimate": len(envelope.raw),
        "from": envelope.sender,
        "to": list(envelope.to),
        "cc": list(envelope.cc),
        # Not in the stored copy (Gmail strips it) but recorded for tests.
        "bcc": list(envelope.bcc),
        "subject": envelope.subject,
        "headers": [{"name": name, "value": decode_header_value(value)} for name, value in envelope.headers],
        "mimeType": content.tree.mime_type,
        "text": content.text,
        "html": content.html,
        "attachments": [
            {
                "filename": attachment.filename,
                "contentType": attachment.content_type,
                "size": attachment.size,
                "contentId": attachment.content_id,
                "inline": attachment.inline,
            }
            for attachment in content.attachments
        ],
        "snippet": content.snippet,
    }
