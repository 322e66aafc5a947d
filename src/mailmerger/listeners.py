"""Listening sockets bound before any server starts, so that a port in use is reported at once,
by the caller, naming the setting that chose it."""

from __future__ import annotations

import errno
import socket


class PortUnavailable(Exception):
    """A port could not be listened on; the message names the setting and what to do."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port) and listening; ``OSError`` as the
    operating system reports it (``EADDRINUSE``, ``EADDRNOTAVAIL``…)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn and werkzeug do: a port left in TIME_WAIT by the last run is free again at
        # once; one a process listens on still is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listen_for(host: str, port: int, *, variable: str, remedy: str) -> socket.socket:
    """``listening_socket``, failing with one line that names ``variable`` and says what to do."""
    try:
        return listening_socket(host, port)
    except OSError as exc:
        raise PortUnavailable(
            describe_bind_error(exc, host, port, variable=variable, remedy=remedy)
        ) from None


def describe_bind_error(exc: OSError, host: str, port: int, *, variable: str, remedy: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use ({variable}): {remedy}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: this machine has no such address ({variable.split(',')[0]})"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this user lacks ({variable}): {remedy}"
    return f"cannot listen on {host}:{port} ({variable}): {exc.strerror or exc}"
