"""Compliance rules without infrastructure: unsubscribe tokens and suppression entries."""

from __future__ import annotations

import pytest

from mailmerger_queue.compliance.suppression import Kind, address_entry, domain_entry, entry_of
from mailmerger_queue.compliance.tokens import Row, UnsubscribeTokens
from mailmerger_queue.errors import Invalid

TOKENS = UnsubscribeTokens(b"k" * 32, "https://mail.example.com/")


def test_a_token_opens_to_its_row_and_reveals_nothing() -> None:
    """The link names the campaign row it was sent to; the token itself holds no readable id."""
    url = TOKENS.url(Row(campaign_id=42, row_number=7))
    assert url.startswith("https://mail.example.com/v1/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert TOKENS.open(token) == Row(42, 7)
    assert TOKENS.token(Row(campaign_id=42, row_number=7)) == token  # one row, one link
    assert TOKENS.token(Row(campaign_id=42, row_number=8)) != token


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2],
        lambda t: t + "A",
        lambda t: ("B" if t[0] != "B" else "C") + t[1:],
        lambda t: "!" * 54,
    ],
)
def test_an_altered_or_forged_token_opens_to_nothing(mangle: object) -> None:
    """Authentication fails for any change: no row is guessed from a token not sealed here."""
    token = TOKENS.token(Row(1, 1))
    altered = mangle(token)  # type: ignore[operator]
    assert altered != token
    assert TOKENS.open(altered) is None


def test_another_key_cannot_open_a_token() -> None:
    """A token sealed by one deployment's key is nothing to another's."""
    other = UnsubscribeTokens(b"o" * 32, "https://mail.example.com")
    assert other.open(TOKENS.token(Row(1, 1))) is None


def test_addresses_are_suppressed_lowercased() -> None:
    """Bob@Example.COM and bob@example.com are one entry."""
    assert address_entry(" Bob@Example.COM ") == (Kind.ADDRESS, "bob@example.com")


@pytest.mark.parametrize(
    ("written", "stored"),
    [("Example.com", "example.com"), ("@acme.io", "acme.io"), ("bücher.de", "xn--bcher-kva.de")],
)
def test_domains_are_normalized(written: str, stored: str) -> None:
    """A domain is lowercased, without a leading @, internationalized names in IDNA."""
    assert domain_entry(written) == (Kind.DOMAIN, stored)


@pytest.mark.parametrize(
    "domain", ["", "localhost", "exa mple.com", "a@b.com", "-bad-.com", "x" * 300 + ".com"]
)
def test_what_is_not_a_domain_is_refused_naming_the_field(domain: str) -> None:
    """The error names the field and says what a domain looks like."""
    with pytest.raises(Invalid, match="domain") as refused:
        domain_entry(domain)
    assert refused.value.extra == {"field": "domain"}


def test_an_entry_is_an_address_or_a_domain_not_both() -> None:
    """Both or neither given: a 422 that says to give one."""
    with pytest.raises(Invalid, match="either address or domain"):
        entry_of("a@b.com", "b.com")
    with pytest.raises(Invalid, match="either address or domain"):
        entry_of(None, None)
