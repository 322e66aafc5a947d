"""What a stored message says: its MIME tree, text and HTML bodies, attachments, snippet.

Parsed with ``email.policy.default`` on first use (inspection, ``format=full``, snippets) rather
than on send; a message is immutable once stored, so the result is cached by the mailbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html import unescape
from typing import cast

SNIPPET_CHARS = 200
_PARSER = BytesParser(policy=policy.default)
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    content_id: str | None
    inline: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """One node of the MIME tree; ``part_id`` numbers it the way Gmail does ("", "0", "1.0"…)."""

    part_id: str
    mime_type: str
    filename: str
    headers: tuple[tuple[str, str], ...]
    # Decoded body of a leaf (empty for containers).
    body: bytes
    is_attachment: bool
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    tree: Part
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    snippet: str


def read_content(raw: bytes) -> Content:
    message = _PARSER.parsebytes(raw)
    tree = _part(message, "")
    leaves = list(_leaves(tree))
    text = next(
        (_text(leaf) for leaf in leaves if leaf.mime_type == "text/plain" and not leaf.is_attachment), None
    )
    html = next(
        (_text(leaf) for leaf in leaves if leaf.mime_type == "text/html" and not leaf.is_attachment), None
    )
    attachments = tuple(
        Attachment(
            filename=leaf.filename,
            content_type=leaf.mime_type,
            size=len(leaf.body),
            content_id=_header(leaf, "content-id"),
            inline=(_header(leaf, "content-disposition") or "").lower().startswith("inline"),
        )
        for leaf in leaves
        if leaf.is_attachment
    )
    source = text if text is not None else _TAG.sub(" ", html or "")
    snippet = _SPACE.sub(" ", unescape(source)).strip()[:SNIPPET_CHARS]
    return Content(tree=tree, text=text, html=html, attachments=attachments, snippet=snippet)


def _part(message: EmailMessage, part_id: str) -> Part:
    headers = tuple((name, str(value)) for name, value in message.items())
    filename = message.get_filename() or ""
    if message.is_multipart():
        children = tuple(
            # policy.default's message factory builds EmailMessage objects throughout the tree.
            _part(cast(EmailMessage, child), f"{part_id}.{index}" if part_id else str(index))
            for index, child in enumerate(message.iter_parts())
        )
        return Part(
            part_id=part_id,
            mime_type=message.get_content_type(),
            filename=filename,
            headers=headers,
            body=b"",
            is_attachment=False,
            parts=children,
        )
    payload = message.get_payload(decode=True)
    return Part(
        part_id=part_id,
        mime_type=message.get_content_type(),
        filename=filename,
        headers=headers,
        body=payload if isinstance(payload, bytes) else b"",
        is_attachment=bool(filename) or message.get_content_disposition() == "attachment",
        parts=(),
    )


def _leaves(part: Part) -> list[Part]:
    if not part.parts:
        return [part]
    return [leaf for child in part.parts for leaf in _leaves(child)]


def _header(part: Part, name: str) -> str | None:
    return next((value for key, value in part.headers if key.lower() == name), None)


def _text(part: Part) -> str:
    charset = "utf-8"
    content_type = _header(part, "content-type") or ""
    found = re.search(r'charset="?([\w.:-]+)"?', content_type, re.IGNORECASE)
    if found:
        charset = found.group(1)
    try:
        return part.body.decode(charset, "replace")
    except LookupError:
        return part.body.decode("utf-8", "replace")
