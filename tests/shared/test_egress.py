"""Webhook targets: a user's URL never reaches a private, loopback or link-local address."""

from __future__ import annotations

import pytest

from mailmerger_shared.egress import EgressPolicy, RefusedTarget, Target, resolve

STRICT = EgressPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://192.168.0.10:8443/hook",
        "https://100.64.0.1/hook",  # carrier-grade NAT: not global
        "https://2130706433/hook",  # 127.0.0.1 written as one number
        "https://localhost/hook",
    ],
)
async def test_private_loopback_and_link_local_targets_are_refused(url: str) -> None:
    """Whatever way the address is written, a non-public one is refused after resolution."""
    with pytest.raises(RefusedTarget, match=r"private, loopback or link-local|does not resolve"):
        await resolve(url, STRICT)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "valid http"),
        ("https://user:pw@example.com/x", "no user name"),
        ("http://example.com/x", "use https"),
        ("https://example.com/x#frag", "fragment"),
        ("https://exa mple.com/x", "without spaces"),
        ("https://exam_ple.com/x", "valid http"),
        ("https://" + "a" * 3000 + ".com/", "at most"),
    ],
)
async def test_malformed_urls_say_what_to_change(url: str, reason: str) -> None:
    """A URL that is not a plain http(s) URL is refused with a message naming the fix."""
    with pytest.raises(RefusedTarget, match=reason) as refused:
        await resolve(url, STRICT, field="url")
    assert refused.value.extra == {"field": "url"}


async def test_the_development_allowlist_admits_a_local_receiver_over_http() -> None:
    """An allowlisted host may be private and plain http (a test receiver)."""
    target = await resolve("http://127.0.0.1:8765/events", EgressPolicy(frozenset({"127.0.0.1"})))
    assert target.address == "127.0.0.1"
    assert target.request_url() == "http://127.0.0.1:8765/events"


def test_the_request_goes_to_the_checked_address_under_the_urls_host() -> None:
    """The connection uses the resolved address; Host and TLS server name keep the URL's host."""
    target = Target(
        url="https://hooks.example.com:8443/a?b=1", host="hooks.example.com", address="93.184.216.34"
    )
    assert target.request_url() == "https://93.184.216.34:8443/a?b=1"
    assert target.request_options() == {
        "headers": {"Host": "hooks.example.com:8443"},
        "extensions": {"sni_hostname": "hooks.example.com"},
    }
    v6 = Target(url="https://h.example/x", host="h.example", address="2606:2800:220:1::1")
    assert v6.request_url() == "https://[2606:2800:220:1::1]/x"
