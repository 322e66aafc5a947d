"""The legacy client's email and queue routes, in its envelope, over the v1 use cases.

Every answer is ``{"success", "status_code", "message", "data"}``; errors keep their real HTTP
status (the old server's "200 with success:false" survives only where the client needs it: a
send without a connected Gmail, which must hand the browser a URL to connect one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from mailmerger_queue.adapters.auth import AuthClient
from mailmerger_queue.api.deps import Auth, Settings, Storage, Templates
from mailmerger_queue.emails import legacy
from mailmerger_queue.emails import service as emails
from mailmerger_shared.web.deps import MAX_RESOURCE_ID, CurrentUser, Transaction
from mailmerger_shared.web.legacy import envelope, legacy_exception_handlers
from mailmerger_shared.web.openapi import documented_body, id_list, problems

# Ids past a bigint name no email (and the driver would refuse them): a 400, like v1's. Zero and
# negative ids stay what they were for the old client: ids not in your queue (404).
# No id is negative, but the old client's contract answers an unknown id with 404, not 422; the
# lower bound keeps any value a number PostgreSQL can compare (a bigint).
EmailIds = JSONBody[list[Annotated[int, msgspec.Meta(ge=-MAX_RESOURCE_ID, le=MAX_RESOURCE_ID)]]]
EMAIL_IDS = documented_body({"application/json": id_list(minimum=-MAX_RESOURCE_ID, maximum=MAX_RESOURCE_ID)})


async def _connect_first(auth: AuthClient, user_id: int) -> Response[Any]:
    """HTTP 200, ``success: false`` and the URL the browser follows to connect Gmail: the old
    client alerts, then navigates there (with a single-use ticket, as it carries no token)."""
    ticket = await auth.connect_ticket(user_id)
    return envelope({"redirect_url": ticket.url}, "connect a Gmail account to send email", success=False)


class LegacyController(Controller):
    # Every kind the app maps to a problem, so none of the app's more specific handlers wins.
    exception_handlers = legacy_exception_handlers()
    tags = ["legacy"]

    @post("/api/email/send-email-now", status_code=200, responses=problems(404, 409, 422))
    async def send_email_now(
        self,
        data: JSONBody[legacy.LegacyEmailIn],
        principal: CurrentUser,
        tx: Transaction,
        templates: Templates,
        storage: Storage,
        auth: Auth,
        settings: Settings,
    ) -> Response[Any]:
        """Send one email now from the user's first connected Gmail, or say where to connect one."""
        account_id = await legacy.first_connected_account(tx, principal.user_id)
        if account_id is None:
            return await _connect_first(auth, principal.user_id)
        email_id = await legacy.submit(
            tx,
            user_id=principal.user_id,
            account_id=account_id,
            email=data,
            send_now=True,
            templates=templates,
            storage=storage,
            settings=settings.compose,
            now=datetime.now(UTC),
        )
        return envelope({"email_id": email_id}, "email is being sent")

    @post("/api/queue/add-to-queue", status_code=200, responses=problems(404, 409, 422))
    async def add_to_queue(
        self,
        data: JSONBody[legacy.LegacyEmailIn],
        principal: CurrentUser,
        tx: Transaction,
        templates: Templates,
        storage: Storage,
        settings: Settings,
    ) -> Response[Any]:
        """Queue an email: sent at its ``send_at``, or held until "send queued emails".

        Without a connected Gmail account it is queued all the same, for the first account the
        user connects (sending the queue says where to connect one).
        """
        account_id = await legacy.queueing_account(tx, principal.user_id)
        await legacy.submit(
            tx,
            user_id=principal.user_id,
            account_id=account_id,
            email=data,
            send_now=False,
            templates=templates,
            storage=storage,
            settings=settings.compose,
            now=datetime.now(UTC),
        )
        return envelope({"queue_length": await legacy.queue_length(tx, principal.user_id)}, "email queued")

    @get("/api/queue/get-email-queue")
    async def get_email_queue(self, principal: CurrentUser, tx: Transaction) -> Response[Any]:
        """The user's unsent emails."""
        queued = await legacy.queued_emails(tx, principal.user_id)
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
        self, data: EmailIds, principal: CurrentUser, tx: Transaction, auth: Auth
    ) -> Response[Any]:
        """Send the given queued emails now (in the background); 404 if any id is not the user's;
        without a connected Gmail, where to connect one (as send-email-now answers)."""
        await legacy.require_owned(tx, principal.user_id, data)
        if await legacy.first_connected_account(tx, principal.user_id) is None:
            return await _connect_first(auth, principal.user_id)
        sent = await emails.send_now_many(tx, principal.user_id, data, now=datetime.now(UTC))
        return envelope({"sent_emails": sent}, "emails are being sent")

    @delete(
        "/api/queue/delete-queue-email",
        status_code=200,
        responses=problems(404, 409),
        operation_class=EMAIL_IDS,
    )
    async def delete_queue_email(
        self, data: EmailIds, principal: CurrentUser, tx: Transaction
    ) -> Response[Any]:
        """Remove the given emails from the queue; 404 if any id is not the user's."""
        await legacy.require_owned(tx, principal.user_id, data)
        deleted = await emails.cancel_many(tx, principal.user_id, data, now=datetime.now(UTC))
        remaining = await legacy.queue_length(tx, principal.user_id)
        return envelope(
            {"deleted_emails_ids": deleted, "remaining_queue_length": remaining},
            "emails removed from the queue",
        )


ROUTES: list[ControllerRouterHandler] = [LegacyController]
