"""``/v1/senders``: the user's Gmail accounts with their limits, usage and parking."""

from __future__ import annotations

from litestar import Controller, get, patch
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.deps import Senders
from mailmerger_queue.schemas import Sender, SenderLimits
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import problems


class SendersController(Controller):
    path = "/v1/senders"
    tags = ["senders"]

    @get("/")
    async def list_senders(self, principal: CurrentUser, tx: Transaction, senders: Senders) -> list[Sender]:
        """Connected accounts, their limits, messages sent in the last 24 h, and parked-until."""
        return await senders.accounts(tx, principal.user_id)

    @patch("/{account_id:int}", responses=problems(422))
    async def update_limits(
        self,
        account_id: ResourceId,
        data: JSONBody[SenderLimits],
        principal: CurrentUser,
        tx: Transaction,
        senders: Senders,
    ) -> Sender:
        """Change an account's daily and per-minute limits (per minute: at most Gmail's quota)."""
        return await senders.update_limits(tx, principal.user_id, account_id, data)


ROUTES: list[ControllerRouterHandler] = [SendersController]
