"""``/v1/emails``: compose, list, read, delete, cancel, send now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.deps import Emails
from mailmerger_queue.domain import State
from mailmerger_queue.emails import reads as email_reads
from mailmerger_queue.schemas import ComposeEmail, EmailDetail, EmailPage, Resolve
from mailmerger_shared.web.deps import CurrentUser, ResourceId, ResourceIdFilter, Transaction
from mailmerger_shared.web.openapi import problems
from mailmerger_shared.web.problems import Problem

# next_cursor is opaque (``mailmerger_shared.pagination``); this only keeps out what it never is.
Cursor = Annotated[
    str | None,
    QueryParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="next_cursor of the previous page"),
]
# Taken as text and parsed here: Litestar's lax decoding also took numbers ("0.5") as instants.
Instant = Annotated[
    str | None,
    QueryParameter(schema_extra={"format": "date-time"}, description="RFC 3339, with an offset"),
]


def _instant(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 date-time with an offset, or a 400 saying how to write one."""
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None or "T" not in value.upper():
        raise Problem(f"{name}: give an RFC 3339 date-time with an offset, like 2024-05-01T09:00:00Z")
    return instant


class EmailsController(Controller):
    path = "/v1/emails"
    tags = ["emails"]

    @post("/", responses=problems(404, 409, 422))
    async def compose(
        self,
        data: JSONBody[ComposeEmail],
        principal: CurrentUser,
        tx: Transaction,
        emails: Emails,
    ) -> EmailDetail:
        """Write one email into the ledger, scheduled for ``send_at`` (default: now)."""
        return await emails.compose(tx, principal.user_id, data)

    @get("/")
    async def list_emails(
        self,
        principal: CurrentUser,
        tx: Transaction,
        states: Annotated[list[State] | None, QueryParameter(name="state")] = None,
        account_id: ResourceIdFilter = None,
        campaign_id: ResourceIdFilter = None,
        send_after: Instant = None,
        send_before: Instant = None,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> EmailPage:
        """The user's emails, newest first, filtered by state, account, campaign and send time."""
        criteria = email_reads.EmailFilter(
            states=states or [],
            account_id=account_id,
            campaign_id=campaign_id,
            send_after=_instant("send_after", send_after),
            send_before=_instant("send_before", send_before),
        )
        return await email_reads.list_emails(tx, principal.user_id, criteria, cursor=cursor, limit=limit)

    @get("/{email_id:int}")
    async def get_email(self, email_id: ResourceId, principal: CurrentUser, tx: Transaction) -> EmailDetail:
        """One email with its attempts and every state transition."""
        return await email_reads.get_email(tx, principal.user_id, email_id)

    @delete("/{email_id:int}", responses=problems(404, 409))
    async def delete_email(
        self, email_id: ResourceId, principal: CurrentUser, tx: Transaction, emails: Emails
    ) -> None:
        """Delete an email that was never sent: held or scheduled (not dispatched yet), failed or
        cancelled. 409 for one in flight, unconfirmed or sent (saying what to do instead), and for
        a campaign's email (cancel it, or stop its row)."""
        await emails.delete(tx, principal.user_id, email_id)

    @post("/{email_id:int}/cancel", status_code=200, responses=problems(409))
    async def cancel(
        self, email_id: ResourceId, principal: CurrentUser, tx: Transaction, emails: Emails
    ) -> EmailDetail:
        """Cancel an email that is not dispatched yet (409 once it is)."""
        return await emails.cancel(tx, principal.user_id, email_id)

    @post("/{email_id:int}/send-now", status_code=200, responses=problems(409))
    async def send_now(
        self, email_id: ResourceId, principal: CurrentUser, tx: Transaction, emails: Emails
    ) -> EmailDetail:
        """Make an email due now. A failed or unconfirmed one is sent again: a new attempt that
        really reaches Gmail. An unconfirmed one may then arrive twice (Gmail may already have
        delivered it), as with ``resolve`` ``resend_anyway``."""
        return await emails.send_now(tx, principal.user_id, email_id)

    @post("/{email_id:int}/resolve", status_code=200, responses=problems(409))
    async def resolve(
        self,
        email_id: ResourceId,
        data: JSONBody[Resolve],
        principal: CurrentUser,
        tx: Transaction,
        emails: Emails,
    ) -> EmailDetail:
        """Settle an unconfirmed email (Gmail may or may not have sent it; no granted scope can
        check): ``resend_anyway`` sends it again, and **the recipient may get it twice**;
        ``mark_as_sent`` records it as sent and sends nothing. 409 unless the email is unconfirmed."""
        return await emails.resolve(tx, principal.user_id, email_id, data.resolution)


ROUTES: list[ControllerRouterHandler] = [EmailsController]
