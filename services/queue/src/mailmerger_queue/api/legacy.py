"""The legacy client's email and queue routes, in its envelope, over the v1 use cases.

Every answer is ``{"success", "status_code", "message", "data"}``; errors keep their real HTTP
status (the old server's "200 with success:false" survives only where the client needs it: a
send without a connected Gmail, which must hand the browser a URL to connect one).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.deps import Legacy
from mailmerger_queue.emails.legacy import ConnectGmail, LegacyEmailIn, queued_emails
from mailmerger_shared.web.deps import MAX_RESOURCE_ID, CurrentUser, Transaction
from mailmerger_shared.web.legacy import envelope, legacy_exception_handlers
from mailmerger_shared.web.openapi import documented_body, id_list, problems

# Ids past a bigint name no email (and the driver would refuse them): a 400, like v1's. Zero and
# negative ids stay what they were for the old client: ids not in your queue (404).
# No id is negative, but the old client's contract answers an unknown id with 404, not 422; the
# lower bound keeps any value a number PostgreSQL can compare (a bigint).
EmailIds = JSONBody[list[Annotated[int, msgspec.Meta(ge=-MAX_RESOURCE_ID, le=MAX_RESOURCE_ID)]]]
EMAIL_IDS = documented_body({"application/json": id_list(minimum=-MAX_RESOURCE_ID, maximum=MAX_RESOURCE_ID)})


def _connect_first(connect: ConnectGmail) -> Response[Any]:
    """HTTP 200, ``success: false`` and the URL the browser follows to connect Gmail: the old
    client alerts, then navigates there (with a single-use ticket, as it carries no token)."""
    return envelope({"redirect_url": connect.url}, "connect a Gmail account to send email", success=False)


class LegacyController(Controller):
    # Every kind the app maps to a problem, so none of the app's more specific handlers wins.
    exception_handlers = legacy_exception_handlers()
    tags = ["legacy"]

    @post("/api/email/send-email-now", status_code=200, responses=problems(404, 409, 422))
    async def send_email_now(
        self, data: JSONBody[LegacyEmailIn], principal: CurrentUser, tx: Transaction, legacy: Legacy
    ) -> Response[Any]:
        """Send one email now from the user's first connected Gmail, or say where to connect one."""
        sent = await legacy.send_email_now(tx, principal.user_id, data)
        if isinstance(sent, ConnectGmail):
            return _connect_first(sent)
        return envelope({"email_id": sent}, "email is being sent")

    @post("/api/queue/add-to-queue", status_code=200, responses=problems(404, 409, 422))
    async def add_to_queue(
        self, data: JSONBody[LegacyEmailIn], principal: CurrentUser, tx: Transaction, legacy: Legacy
    ) -> Response[Any]:
        """Queue an email: sent at its ``send_at``, or held until "send queued emails".

        Without a connected Gmail account it is queued all the same, for the first account the
        user connects (sending the queue says where to connect one).
        """
        queue_length = await legacy.add_to_queue(tx, principal.user_id, data)
        return envelope({"queue_length": queue_length}, "email queued")

    @get("/api/queue/get-email-queue")
    async def get_email_queue(self, principal: CurrentUser, tx: Transaction) -> Response[Any]:
        """The user's unsent emails."""
        queued = await queued_emails(tx, principal.user_id)
        return envelope(
            {"queue_length": len(queued), "emails": [msgspec.to_builtins(e) for e in queued]}, "email queue"
        )

    @post(
        "/api/queue/send-queued-emails",
        status_code=200,
        responses=problems(404, 409),
        operation_class=EMAIL_IDS,
    )
    async def send_queued_emails(
        self, data: EmailIds, principal: CurrentUser, tx: Transaction, legacy: Legacy
    ) -> Response[Any]:
        """Send the given queued emails now (in the background); 404 if any id is not the user's;
        without a connected Gmail, where to connect one (as send-email-now answers)."""
        sent = await legacy.send_queued(tx, principal.user_id, data)
        if isinstance(sent, ConnectGmail):
            return _connect_first(sent)
        return envelope({"sent_emails": sent}, "emails are being sent")

    @delete(
        "/api/queue/delete-queue-email",
        status_code=200,
        responses=problems(404, 409),
        operation_class=EMAIL_IDS,
    )
    async def delete_queue_email(
        self, data: EmailIds, principal: CurrentUser, tx: Transaction, legacy: Legacy
    ) -> Response[Any]:
        """Remove the given emails from the queue; 404 if any id is not the user's."""
        deleted, remaining = await legacy.delete_queued(tx, principal.user_id, data)
        return envelope(
            {"deleted_emails_ids": deleted, "remaining_queue_length": remaining},
            "emails removed from the queue",
        )


ROUTES: list[ControllerRouterHandler] = [LegacyController]
