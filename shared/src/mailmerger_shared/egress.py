"""Requests to URLs our users give us (webhook endpoints), made safe against SSRF.

A user-supplied URL must never let a request reach our own network: the metadata service
(169.254.169.254), the database, another service's internal routes. So:

- the URL is parsed by a strict rule (http or https, a host, no credentials, no fragment);
- its host is resolved, and every address it resolves to must be public (``ipaddress``'s
  ``is_global``, IPv4-mapped IPv6 unwrapped), unless the host is on the development allowlist;
- the request then goes to the address that was checked, not to the name again (a second DNS
  answer, "rebinding", cannot swap in a private one): the URL's host stays in the ``Host`` header
  and in TLS's server name, so certificates are still checked against it;
- redirects are never followed (a public URL answering 307 to 10.0.0.1 would be a way in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

from mailmerger_shared.errors import Invalid

MAX_URL_LENGTH = 2048
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedTarget(Invalid):
    """The URL may not be requested: malformed, or it leads to a private address."""


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """``allowed_hosts``: hosts (as written in URLs) exempt from the public-address rule and from
    https, for development and tests (a receiver on 127.0.0.1). Empty in production."""

    allowed_hosts: frozenset[str] = frozenset()

    def allows(self, host: str) -> bool:
        return host.lower() in self.allowed_hosts


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the address its request will connect to."""

    url: str
    host: str
    address: str

    def request_url(self) -> str:
        """The URL with its host replaced by the checked address (brackets for IPv6)."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if ":" in self.address else self.address
        netloc = address if parts.port is None else f"{address}:{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    def request_options(self) -> dict[str, Any]:
        """``headers`` and ``extensions`` for httpx that keep the URL's host for HTTP and TLS."""
        parts = urlsplit(self.url)
        host_header = parts.netloc.rpartition("@")[2]
        return {"headers": {"Host": host_header}, "extensions": {"sni_hostname": self.host}}


def parse_url(url: str, policy: EgressPolicy, *, field: str = "url") -> SplitResult:
    """``url`` split, when it is one we may request; RefusedTarget saying what to change."""
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise _refused(field, f"give an http(s) URL of at most {MAX_URL_LENGTH} characters, without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused(field, "give a valid http(s) URL, like https://example.com/hooks") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not _valid_host(host):
        raise _refused(field, "give a valid http(s) URL, like https://example.com/hooks")
    if parts.username is not None or parts.password is not None:
        raise _refused(field, "put no user name or password in the URL; the signature authenticates us")
    if parts.fragment:
        raise _refused(field, "a URL fragment (#...) is never sent; remove it")
    if parts.scheme != "https" and not policy.allows(host):
        raise _refused(field, "use https: events carry your recipients' addresses")
    if port is not None and not 0 < port < 65536:
        raise _refused(field, "the port must be between 1 and 65535")
    return parts


async def resolve(url: str, policy: EgressPolicy, *, field: str = "url") -> Target:
    """Check ``url`` and resolve its host to the one address the request will go to."""
    parts = parse_url(url, policy, field=field)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise _refused(field, f"the host {host!r} does not resolve; check the URL") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise _refused(field, f"the host {host!r} does not resolve; check the URL")
    if not policy.allows(host):
        private = [address for address in addresses if not is_public(address)]
        if private:
            raise _refused(
                field,
                f"the host {host!r} resolves to {private[0]}, a private, loopback or link-local "
                "address; webhooks go to public addresses only",
            )
    return Target(url=url, host=host, address=str(addresses[0]))


def is_public(address: Address) -> bool:
    """Whether ``address`` is on the public internet (IPv4-mapped IPv6 judged as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def post(
    client: httpx.AsyncClient, target: Target, *, content: bytes, headers: dict[str, str], timeout: float
) -> httpx.Response:
    """POST ``content`` to the checked address of ``target``; redirects are answers, not followed."""
    options = target.request_options()
    return await client.post(
        target.request_url(),
        content=content,
        headers={**headers, **options["headers"]},
        extensions=options["extensions"],
        timeout=timeout,
        follow_redirects=False,
    )


def _valid_host(host: str) -> bool:
    """A DNS name of letters, digits, dots and hyphens, or an IP literal."""
    if _HOST_NAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _refused(field: str, detail: str) -> RefusedTarget:
    return RefusedTarget(f"{field}: {detail}", extra={"field": field})
