"""``OPTIONS`` answers ``Allow`` with every method of the path.

Litestar 2.25 builds a path's ``OPTIONS`` handler when the path's first handler is registered, and
that handler keeps answering the methods known then: ``OPTIONS /v1/auth/me`` said ``GET, OPTIONS``
although ``DELETE`` is served too. ``AllowEveryMethod`` learns each path's final methods as its
routes are registered and corrects the header before the answer is sent.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import Message, Scope


class AllowEveryMethod(ReceiveRoutePlugin):
    """A plugin (it sees every route) and a ``before_send`` hook (it corrects ``Allow``)."""

    def __init__(self) -> None:
        self._allow: dict[str, str] = {}

    def receive_route(self, route: BaseRoute) -> None:
        if isinstance(route, HTTPRoute):  # a later route for the same path has every method so far
            self._allow[route.path_format] = ", ".join(sorted(route.methods))

    async def before_send(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        allow = self._allow.get(scope.get("path_template", ""))
        headers = MutableScopeHeaders.from_message(message)
        if allow is not None and "allow" in headers:
            headers["allow"] = allow


__all__ = ["AllowEveryMethod"]
