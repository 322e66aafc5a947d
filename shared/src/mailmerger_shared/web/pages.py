"""Small HTML pages for people who follow a link from a mail (confirm an address, unsubscribe).

A link's GET shows a page and changes nothing (mail scanners fetch links before people do); its
form POSTs back to act. The pages carry no script and no third-party resource, every value in them
is escaped by the caller with ``html.escape``, and the token in the URL never leaves in a Referer.
"""

from __future__ import annotations

import html

from litestar import Response

from mailmerger_shared.errors import DomainError
from mailmerger_shared.web.problems import domain_status

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # a token is in the URL: never hand it to another site
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def page(title: str, body: str, status: int = 200) -> Response[str]:
    """A page titled ``title`` (escaped here) around ``body`` (HTML the caller escaped)."""
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width">'
        f"<title>{html.escape(title)} · MailMerger</title>"
        "<style>body{font:16px system-ui;max-width:32rem;margin:4rem auto;padding:0 1rem}"
        "input,button{font:inherit;padding:.4rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status_code=status, media_type="text/html", headers=PAGE_HEADERS)


def refusal(title: str, error: DomainError) -> Response[str]:
    """The page saying why a link did nothing, with the status its problem response would have."""
    status, _ = domain_status(error)
    return page(title, f"<p>{html.escape(error.detail)}</p>", status=status)
