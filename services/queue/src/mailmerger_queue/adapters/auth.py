"""The auth service: connect tickets that start the Gmail connect flow for a user."""

from __future__ import annotations

from mailmerger_queue.adapters.base import call, decode
from mailmerger_queue.errors import UpstreamFailed
from mailmerger_shared.internal_api import ConnectTicket
from mailmerger_shared.web.internal import InternalClient


class AuthClient:
    def __init__(self, client: InternalClient) -> None:
        self._client = client

    async def connect_ticket(self, user_id: int) -> ConnectTicket:
        response = await call(self._client, "auth", "POST", f"/internal/auth/users/{user_id}/connect-tickets")
        if response is None:
            raise UpstreamFailed(f"the auth service does not know user {user_id}")
        return decode(response, "auth", ConnectTicket)
