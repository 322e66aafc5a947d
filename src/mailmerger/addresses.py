"""One base port for the all-in-one: everything else it listens on or is reached at follows it.

Moving off 8080 used to take six variables (the port, the public URL, the JWKS URL, the internal
port, the local S3 port, and the CLI's URL). Now ``MM_HTTP_PORT`` (and ``MM_HTTP_HOST``) decide,
and each of the others, when unset, is derived from them:

- ``MM_HTTP_PUBLIC_URL``: ``http://<host>:<port>`` (127.0.0.1 when the host is every interface);
- ``MM_JWT_JWKS_URL``: auth's JWKS on that listener;
- ``MM_RUN_INTERNAL_PORT``: the port + 1; ``MM_RUN_LOCAL_S3_PORT``: the port + 2.

A variable that is set wins, as everywhere. The CLI (``demo``, ``send``, ``login``, ``connect``)
finds the system the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailmerger_shared.settings import HttpSettings, environment

INTERNAL_PORT_OFFSET = 1
LOCAL_S3_PORT_OFFSET = 2
_EVERY_INTERFACE = {"0.0.0.0", "::", ""}  # noqa: S104 (names, compared against)


def _base(env: Mapping[str, str]) -> tuple[str, int] | None:
    """The listener's host and port, or None when the port is malformed (settings report it)."""
    host = env.get("MM_HTTP_HOST") or HttpSettings().host
    raw = env.get("MM_HTTP_PORT") or str(HttpSettings().port)
    try:
        port = int(raw)
    except ValueError:
        return None
    return host, port


def _reachable(host: str) -> str:
    if host in _EVERY_INTERFACE:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def derived_addresses(env: Mapping[str, str]) -> dict[str, str]:
    """The variables ``env`` leaves unset that follow from ``MM_HTTP_HOST``/``MM_HTTP_PORT``."""
    base = _base(env)
    if base is None:
        return {}
    host, port = base
    listener = f"http://{_reachable(host)}:{port}"
    derived = {
        "MM_HTTP_PUBLIC_URL": listener,
        "MM_JWT_JWKS_URL": f"{listener}/v1/auth/.well-known/jwks.json",
        "MM_RUN_INTERNAL_PORT": str(port + INTERNAL_PORT_OFFSET),
        "MM_RUN_LOCAL_S3_PORT": str(port + LOCAL_S3_PORT_OFFSET),
    }
    return {name: value for name, value in derived.items() if not env.get(name)}


def with_derived_addresses(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, **derived_addresses(env)}


def public_url(env: Mapping[str, str] | None = None) -> str:
    """Where a client reaches the system: ``MAILMERGER_URL``, else ``MM_HTTP_PUBLIC_URL`` (the
    environment over ``.env``), else the address derived from ``MM_HTTP_PORT``."""
    env = environment() if env is None else env
    chosen = env.get("MAILMERGER_URL") or with_derived_addresses(env).get("MM_HTTP_PUBLIC_URL")
    return (chosen or HttpSettings().public_url).rstrip("/")
