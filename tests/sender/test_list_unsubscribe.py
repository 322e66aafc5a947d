"""RFC 8058 one-click unsubscribe headers: written when the command carries a URL, never forged."""

from __future__ import annotations

import pytest

from mailmerger_sender.mime import InvalidMessage
from tests.sender.test_mime import build, parse

URL = "https://mail.example.com/v1/unsubscribe/AbC-12_xyz"


def test_campaign_mail_carries_both_unsubscribe_headers() -> None:
    """A command with an unsubscribe URL gets List-Unsubscribe and List-Unsubscribe-Post."""
    message = parse(build(unsubscribe_url=URL))
    assert message["List-Unsubscribe"] == f"<{URL}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_mailto_is_listed_after_the_url_and_long_fields_fold() -> None:
    """The mailto follows the https URL, as one list; a long field folds between its items."""
    mailto = "mailto:ada+unsubscribe@gmail.test?subject=unsubscribe"
    raw = build(unsubscribe_url=URL + "x" * 40, unsubscribe_mailto=mailto)
    assert f"<{URL}{'x' * 40}>,\r\n <{mailto}>".encode() in raw
    assert parse(raw)["List-Unsubscribe"] == f"<{URL}{'x' * 40}>, <{mailto}>"


def test_one_off_mail_has_no_unsubscribe_headers() -> None:
    """Without a URL in the command (a personal email) neither header is written."""
    raw = build()
    assert b"List-Unsubscribe" not in raw


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "https://evil.test/a>, <https://other.test/",
        "https://evil.test/a\r\nBcc: victim@example.com",
        "https://evil.test/=?utf-8?q?x?=",
        "https://evil.test/ space",
        "https://" + "a" * 1000 + ".test/",
    ],
)
def test_an_unsubscribe_url_outside_the_grammar_is_refused(url: str) -> None:
    """A URL that could end the list item, add a header or look encoded is refused, not escaped."""
    with pytest.raises(InvalidMessage, match="unsubscribe_url"):
        build(unsubscribe_url=url)


def test_a_mailto_with_a_forged_address_is_refused() -> None:
    """The mailto must be one plain address with an optional plain subject."""
    with pytest.raises(InvalidMessage, match="unsubscribe_mailto"):
        build(unsubscribe_url=URL, unsubscribe_mailto="mailto:a@b.test,c@d.test")
