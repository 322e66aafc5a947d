"""``/v1/suppressions`` (the user's list: add, list, remove, CSV import and export), the public
one-click unsubscribe link ``/v1/unsubscribe/{token}``, and the bulk-sender report."""

from __future__ import annotations

import html
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.deps import Compliance
from mailmerger_queue.compliance.rails import BulkSenderDomain
from mailmerger_queue.compliance.suppression import ImportReport, Kind, Suppression, SuppressionPage
from mailmerger_queue.compliance.tokens import UNSUBSCRIBE_PATH
from mailmerger_queue.compliance.use_cases import AddSuppression
from mailmerger_shared.errors import NotFound
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import documented_body, problems
from mailmerger_shared.web.pages import page, refusal
from mailmerger_shared.web.problems import Problem

MAX_IMPORT_BYTES = 16 * 1024 * 1024
Cursor = Annotated[
    str | None,
    QueryParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="next_cursor of the previous page"),
]
# Tokens are base64url; anything else is refused before any work.
Token = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
PUBLIC: dict[str, Any] = {"exclude_from_auth": True}
IMPORT_BODY = documented_body(
    {
        "text/csv": Schema(
            type=OpenAPIType.STRING, description="first line names 'address' (or 'email') and/or 'domain'"
        )
    }
)


class SuppressionsController(Controller):
    path = "/v1/suppressions"
    tags = ["suppressions"]

    @get("/")
    async def list_suppressions(
        self,
        principal: CurrentUser,
        tx: Transaction,
        compliance: Compliance,
        kind: Annotated[Kind | None, QueryParameter(description="address or domain entries only")] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=320, description="entries starting with this")
        ] = None,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> SuppressionPage:
        """Newest first."""
        return await compliance.page(tx, principal.user_id, kind=kind, search=q, cursor=cursor, limit=limit)

    @post("/", responses=problems(422))
    async def suppress(
        self, data: JSONBody[AddSuppression], principal: CurrentUser, tx: Transaction, compliance: Compliance
    ) -> Response[Suppression]:
        """Suppress an address or a whole domain: 201 when added, 200 when it was already there."""
        entry, new = await compliance.suppress(tx, principal.user_id, data)
        return Response(entry, status_code=201 if new else 200)

    @delete("/{suppression_id:int}", status_code=204, responses=problems(404))
    async def remove(
        self, suppression_id: ResourceId, principal: CurrentUser, tx: Transaction, compliance: Compliance
    ) -> None:
        """Take an entry off the list: mail to it is sent again from the next dispatch."""
        await compliance.remove(tx, principal.user_id, suppression_id)

    @post(
        "/import",
        status_code=200,
        request_max_body_size=MAX_IMPORT_BYTES,
        responses=problems(400, 413, 415, 422),
        operation_class=IMPORT_BODY,
    )
    async def import_csv(
        self, request: Request[Any, Any, Any], principal: CurrentUser, tx: Transaction, compliance: Compliance
    ) -> ImportReport:
        """Suppress every address and domain of a CSV; rows that are neither are reported."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("text/csv", "text/plain", "application/octet-stream"):
            raise Problem("send the list as text/csv", status=415, title="Unsupported media type")
        return await compliance.import_csv(tx, principal.user_id, await request.body())

    @get("/export.csv", media_type="text/csv")
    async def export_csv(self, principal: CurrentUser, compliance: Compliance, state: State) -> Stream:
        """The whole list as CSV (streamed), oldest first."""
        return Stream(
            compliance.export_csv(state.infra.sessions, principal.user_id),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
        )


@get("/v1/senders/bulk-sender-report", tags=["senders"])
async def bulk_sender_report(
    principal: CurrentUser, tx: Transaction, compliance: Compliance
) -> list[BulkSenderDomain]:
    """Per sending domain of the user's accounts: messages to personal Gmail addresses in the last
    24 hours, against Gmail's bulk-sender threshold, with a warning when it is near."""
    return await compliance.bulk_sender_report(tx, principal.user_id)


_DONE = "<p>You will not receive more mail from this sender's campaigns.</p>"


# The link's answers are pages for people, including the refusal of a link that names nothing.
_PAGE_404 = {
    404: ResponseSpec(
        data_container=str,
        media_type=MediaType.HTML,
        description="A page saying the link is not valid (or its campaign was deleted)",
    )
}


@get(
    UNSUBSCRIBE_PATH + "{token:str}",
    opt=PUBLIC,
    media_type=MediaType.HTML,
    tags=["unsubscribe"],
    security=[],
    responses=_PAGE_404,
)
async def unsubscribe_page(token: Token, tx: Transaction, compliance: Compliance) -> Response[str]:
    """The link's page: a button that unsubscribes. Opening it changes nothing (mail scanners
    fetch links); only the POST acts."""
    if not await compliance.link_is_valid(tx, token):
        return refusal("This link cannot be used", NotFound("this unsubscribe link is not valid"))
    action = html.escape(UNSUBSCRIBE_PATH + token, quote=True)
    return page(
        "Unsubscribe",
        f'<form method=post action="{action}"><p>Stop receiving mail from this sender\'s campaigns?</p>'
        "<button>Unsubscribe</button></form>",
    )


@post(
    UNSUBSCRIBE_PATH + "{token:str}",
    opt=PUBLIC,
    media_type=MediaType.HTML,
    status_code=200,
    tags=["unsubscribe"],
    security=[],
    responses=_PAGE_404,
)
async def one_click_unsubscribe(token: Token, tx: Transaction, compliance: Compliance) -> Response[str]:
    """RFC 8058's one-click POST (``List-Unsubscribe=One-Click``) and the page's button: the body
    is not needed, and a second POST answers the same."""
    try:
        await compliance.unsubscribe(tx, token)
    except NotFound as error:
        return refusal("This link cannot be used", error)
    return page("You are unsubscribed", _DONE)


ROUTES: list[ControllerRouterHandler] = [
    SuppressionsController,
    bulk_sender_report,
    unsubscribe_page,
    one_click_unsubscribe,
]
