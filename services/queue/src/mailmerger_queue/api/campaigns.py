"""``/v1/campaigns``: create, upload the list, report, preview, send a test of a row to yourself,
launch, pause, resume, cancel, retry the failed, progress (JSON and Server-Sent Events) and the
per-recipient results (CSV)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEvent, Stream
from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.deps import Campaigns
from mailmerger_queue.campaigns import reports as campaign_reports
from mailmerger_queue.campaigns import service as campaign_service
from mailmerger_queue.campaigns.build import RowIn
from mailmerger_queue.campaigns.streams import results_csv
from mailmerger_queue.domain import CampaignState
from mailmerger_queue.schemas import (
    BuildSummary,
    Campaign,
    CloneCampaign,
    CreateCampaign,
    EmailDetail,
    Launch,
    Progress,
    RecipientRows,
    ReplaceSteps,
    Resolve,
    Resolved,
    Retried,
    RowPreview,
    RowStopped,
    StopRow,
    UpdateCampaign,
    ValidationReport,
)
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import documented_body, problems
from mailmerger_shared.web.problems import Conflict, Problem, Unprocessable

CampaignId = ResourceId
RowNumber = Annotated[int, PathParameter(ge=0, le=2**31 - 1)]
# next_cursor is opaque (``mailmerger_shared.pagination``); this only keeps out what it never is.
Cursor = Annotated[
    str | None,
    QueryParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="next_cursor of the previous page"),
]

# The list is read by the handler itself (CSV streamed), so its two forms are documented here.
RECIPIENTS = documented_body(
    {
        "text/csv": Schema(type=OpenAPIType.STRING, description="first line names the columns"),
        "application/json": Schema(
            type=OpenAPIType.OBJECT,
            required=["rows"],
            additional_properties=False,
            properties={"rows": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT))},
        ),
    }
)


class CampaignsController(Controller):
    path = "/v1/campaigns"
    tags = ["campaigns"]

    @post("/", responses=problems(404, 409, 422))
    async def create(
        self,
        data: JSONBody[CreateCampaign],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> Campaign:
        """A draft campaign: template version, sending account, attachments and schedule."""
        return await campaigns.create(tx, principal.user_id, data)

    @get("/")
    async def list_campaigns(self, principal: CurrentUser, tx: Transaction) -> list[Campaign]:
        return await campaign_service.list_campaigns(tx, principal.user_id)

    @get("/{campaign_id:int}")
    async def get_campaign(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction
    ) -> Campaign:
        return await campaign_service.described(
            tx, await campaign_service.owned(tx, principal.user_id, campaign_id)
        )

    @patch("/{campaign_id:int}", responses=problems(404, 409, 422))
    async def update(
        self,
        campaign_id: CampaignId,
        data: JSONBody[UpdateCampaign],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> Campaign:
        """Change a draft's name, schedule (replaced whole, checked as at creation), unsubscribe
        links, reply stops or attachments column; 409 once launched (its follow-ups can still change,
        with ``PUT …/steps``). The unsubscribe links and attachments column can change only while no
        list is uploaded: the rows were checked and rendered with them."""
        return await campaigns.update(tx, principal.user_id, campaign_id, data)

    @delete("/{campaign_id:int}", responses=problems(404, 409))
    async def delete_campaign(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, campaigns: Campaigns
    ) -> None:
        """Delete a draft, completed or cancelled campaign with its list, steps and messages (409
        while running or paused: cancel it first). A campaign that sent mail is kept until Gmail's
        daily limit no longer counts it (24 hours) or, with unsubscribe links, for 30 days after its
        last send, so those links keep working."""
        await campaigns.delete(tx, principal.user_id, campaign_id)

    @post("/{campaign_id:int}/clone", status_code=201, responses=problems(404, 422))
    async def clone(
        self,
        campaign_id: CampaignId,
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
        data: JSONBody[CloneCampaign | None] = None,
    ) -> Campaign:
        """A new draft with the same settings and steps, named ``<name> (copy)`` unless ``name`` is
        given; with ``recipients: true`` its list is built again from the same rows, ready to
        launch. Works from any state."""
        return await campaigns.clone(tx, principal.user_id, campaign_id, data or CloneCampaign())

    @put("/{campaign_id:int}/steps", responses=problems(404, 409, 422))
    async def replace_steps(
        self,
        campaign_id: CampaignId,
        data: JSONBody[ReplaceSteps],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> Campaign:
        """Replace the follow-ups (step 2 first). Steps some email was already built for must be
        given unchanged; later ones may change, be added or removed. A built email never changes."""
        return await campaigns.replace_steps(tx, principal.user_id, campaign_id, data)

    @post("/{campaign_id:int}/rows/{row:int}/stop", status_code=200, responses=problems(404, 422))
    async def stop_row(
        self,
        campaign_id: CampaignId,
        row: RowNumber,
        data: JSONBody[StopRow],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> RowStopped:
        """Mark the row ``replied`` or ``stopped``: it gets no later step, and its emails not yet
        dispatched are cancelled. Replies are not watched for accounts that only send (the
        ``gmail.send`` scope), so this is how their sequences stop."""
        return await campaigns.stop_row(tx, principal.user_id, campaign_id, row, data)

    @put(
        "/{campaign_id:int}/recipients",
        request_max_body_size=None,
        responses=problems(409, 413, 415, 422),
        operation_class=RECIPIENTS,
    )
    async def upload_recipients(
        self,
        campaign_id: CampaignId,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> BuildSummary:
        """Replace the list: ``text/csv`` (streamed; first line names the columns) or JSON ``{"rows"}``.

        Each row is checked, rendered and stored; the answer counts the rows with each problem.
        """
        row = await campaign_service.owned(tx, principal.user_id, campaign_id, lock=True)
        if row.state != CampaignState.DRAFT:
            raise Conflict(
                f"campaign {campaign_id} is {row.state}; the list can change only while it is a draft"
            )
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        rows: AsyncIterator[RowIn]
        if media in ("text/csv", "text/plain", "application/octet-stream"):
            rows = campaigns.csv_rows(request.stream(), row)
        elif media == "application/json":
            body = await request.body()
            if len(body) > campaigns.max_upload_bytes:
                raise Problem(
                    f"the recipient list is larger than {campaigns.max_upload_bytes} bytes", status=413
                )
            try:
                decoded = msgspec.json.decode(body, type=RecipientRows)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise Unprocessable(f'the JSON list must be {{"rows": [{{...}}, ...]}}: {exc}') from exc
            rows = campaigns.json_rows(decoded.rows)
        else:
            raise Problem(
                "send the list as text/csv or application/json", status=415, title="Unsupported media type"
            )
        return await campaigns.build(tx, principal.user_id, row, rows)

    @get("/{campaign_id:int}/report")
    async def validation_report(
        self,
        campaign_id: CampaignId,
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> ValidationReport:
        """Counts of problems and, row by row, what is wrong (invalid address, duplicate, missing
        fields…); how many rows the suppression list stops; warnings to fix before launching."""
        return await campaigns.report(tx, principal.user_id, campaign_id, cursor=cursor, limit=limit)

    @get("/{campaign_id:int}/rows/{row:int}")
    async def preview_row(
        self,
        campaign_id: CampaignId,
        row: RowNumber,
        principal: CurrentUser,
        tx: Transaction,
    ) -> RowPreview:
        """One row as it will be sent (or why it will not)."""
        return await campaign_reports.preview(tx, principal.user_id, campaign_id, row)

    @post("/{campaign_id:int}/rows/{row:int}/test", status_code=201, responses=problems(404, 409, 422))
    async def send_row_to_self(
        self,
        campaign_id: CampaignId,
        row: RowNumber,
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> EmailDetail:
        """Send a test of this row to yourself: rendered as it will go, to the campaign's own Gmail
        address instead of the recipient, now, with ``[Test]`` before its subject. The test is an
        email of its own (``campaign_id`` null): it never counts in the campaign's progress."""
        return await campaigns.send_row_to_self(tx, principal.user_id, campaign_id, row)

    @post("/{campaign_id:int}/launch", status_code=200, responses=problems(409, 422))
    async def launch(
        self,
        campaign_id: CampaignId,
        data: JSONBody[Launch],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> Campaign:
        """Schedule every valid row; refused (409) while rows have problems, unless ``skip_invalid``."""
        return await campaigns.launch(tx, principal.user_id, campaign_id, data)

    @post("/{campaign_id:int}/pause", status_code=200, responses=problems(409))
    async def pause(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, campaigns: Campaigns
    ) -> Campaign:
        return await campaigns.pause(tx, principal.user_id, campaign_id)

    @post("/{campaign_id:int}/resume", status_code=200, responses=problems(409))
    async def resume(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, campaigns: Campaigns
    ) -> Campaign:
        return await campaigns.resume(tx, principal.user_id, campaign_id)

    @post("/{campaign_id:int}/cancel", status_code=200, responses=problems(409))
    async def cancel(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, campaigns: Campaigns
    ) -> Campaign:
        """Cancel the campaign and its messages not yet dispatched."""
        return await campaigns.cancel(tx, principal.user_id, campaign_id)

    @post("/{campaign_id:int}/retry-failed", status_code=200, responses=problems(409))
    async def retry_failed(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, campaigns: Campaigns
    ) -> Retried:
        """Send the failed messages again: a new attempt each, which really reaches Gmail."""
        return await campaigns.retry_failed(tx, principal.user_id, campaign_id)

    @post("/{campaign_id:int}/resolve-unconfirmed", status_code=200, responses=problems(409))
    async def resolve_unconfirmed(
        self,
        campaign_id: CampaignId,
        data: JSONBody[Resolve],
        principal: CurrentUser,
        tx: Transaction,
        campaigns: Campaigns,
    ) -> Resolved:
        """Settle every unconfirmed message (Gmail may or may not have sent it): ``resend_anyway``
        sends them again, and **their recipients may get them twice**; ``mark_as_sent`` records
        them as sent and sends nothing. The answer's ``note`` says which."""
        return await campaigns.resolve_unconfirmed(tx, principal.user_id, campaign_id, data.resolution)

    @get("/{campaign_id:int}/progress")
    async def progress(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, campaigns: Campaigns
    ) -> Progress:
        """Messages per state, sends per minute now, and the ETA from that rate, the account's
        pace and daily limit, the daily cap and the sending window (saying what the rest waits for)."""
        return await campaigns.progress(tx, principal.user_id, campaign_id)

    @get("/{campaign_id:int}/progress/stream", media_type="text/event-stream")
    async def progress_stream(
        self,
        campaign_id: CampaignId,
        principal: CurrentUser,
        tx: Transaction,
        state: State,
        campaigns: Campaigns,
    ) -> ServerSentEvent:
        """The progress as Server-Sent Events, until the campaign completes or is cancelled."""
        await campaign_service.owned(tx, principal.user_id, campaign_id)
        return ServerSentEvent(
            campaigns.progress_events(state.infra.sessions, principal.user_id, campaign_id)
        )

    @get("/{campaign_id:int}/results.csv", media_type="text/csv")
    async def results(
        self, campaign_id: CampaignId, principal: CurrentUser, tx: Transaction, state: State
    ) -> Stream:
        """Every recipient with what happened to it, as CSV (streamed)."""
        await campaign_service.owned(tx, principal.user_id, campaign_id)
        return Stream(
            results_csv(state.infra.sessions, campaign_id),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-results.csv"'},
        )


ROUTES: list[ControllerRouterHandler] = [CampaignsController]
