"""A small HTML mailbox to read what was sent: a list and a message view.

Everything shown comes from senders and is escaped; an HTML body is shown as its source, never
rendered, so a message cannot run script in the operator's browser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from mailmerger_emulator.google.accounts import TestUser
from mailmerger_emulator.google.mailbox import StoredMessage

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #202124; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
pre { background: #f6f8fa; padding: .8rem; white-space: pre-wrap; word-break: break-word; }
.muted { color: #5f6368; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _when(message: StoredMessage) -> str:
    return datetime.fromtimestamp(message.internal_date_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def mailbox_list_page(
    base_url: str, messages: list[StoredMessage], users: list[TestUser], user: str | None
) -> str:
    home = f"{base_url}/_emulator/mailbox"
    filters = " · ".join(
        [f'<a href="{escape(home)}">all</a>']
        + [f'<a href="{escape(home)}?user={escape(quote(u.email))}">{escape(u.email)}</a>' for u in users]
    )
    rows = "".join(
        "<tr>"
        f"<td>{escape(_when(m))}</td><td>{escape(m.owner)}</td>"
        f"<td>{escape(', '.join((*m.envelope.to, *m.envelope.cc)))}</td>"
        f'<td><a href="{escape(home)}/{escape(m.id)}">{escape(m.envelope.subject or "(no subject)")}</a></td>'
        f"<td class=muted>{escape(m.thread_id)}</td>"
        "</tr>"
        for m in reversed(messages)
    )
    heading = f"Sent by {escape(user)}" if user else "All sent messages"
    body = (
        f"<h1>{heading} ({len(messages)})</h1><p>{filters}</p>"
        "<table><tr><th>Accepted</th><th>Account</th><th>To</th><th>Subject</th><th>Thread</th></tr>"
        f"{rows}</table>"
    )
    return _page("Emulated Gmail: sent mail", body)


def message_page(base_url: str, message: StoredMessage, headers: list[tuple[str, str]]) -> str:
    content = message.content()
    header_rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in headers
    )
    if message.envelope.bcc:
        header_rows += f"<tr><th>Bcc (not stored)</th><td>{escape(', '.join(message.envelope.bcc))}</td></tr>"
    attachments = "".join(
        f"<li>{escape(a.filename)} <span class=muted>{escape(a.content_type)}, {a.size} bytes</span></li>"
        for a in content.attachments
    )
    body = (
        f'<p><a href="{escape(base_url)}/_emulator/mailbox">&larr; mailbox</a></p>'
        f"<h1>{escape(message.envelope.subject or '(no subject)')}</h1>"
        f"<p class=muted>Gmail id {escape(message.id)}, thread {escape(message.thread_id)}, "
        f"{escape(_when(message))}</p>"
        f"<table>{header_rows}</table>"
        f"<h2>Text</h2><pre>{escape(content.text or '')}</pre>"
        f"<h2>HTML (source)</h2><pre>{escape(content.html or '')}</pre>"
        f"<h2>Attachments</h2><ul>{attachments or '<li class=muted>none</li>'}</ul>"
    )
    return _page(message.envelope.subject or "Message", body)
