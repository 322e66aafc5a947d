"""``/v1/webhooks``: the user's endpoints (the secret shown on creation and rotation only), their
deliveries with each attempt, replays and test events."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.deps import Webhooks
from mailmerger_queue.webhooks.schemas import (
    CreateEndpoint,
    Delivery,
    DeliveryPage,
    Endpoint,
    EndpointWithSecret,
    UpdateEndpoint,
)
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import problems

Cursor = Annotated[str | None, QueryParameter(max_length=64, description="next_cursor of the previous page")]


class WebhooksController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]

    @post("/", responses=problems(409, 422))
    async def create(
        self,
        data: JSONBody[CreateEndpoint],
        principal: CurrentUser,
        tx: Transaction,
        webhooks: Webhooks,
    ) -> EndpointWithSecret:
        """Register an endpoint for some event types. The answer holds its signing secret
        (``whsec_…``, Standard Webhooks), shown this once. The URL must reach a public address."""
        return await webhooks.create(tx, principal.user_id, data)

    @get("/")
    async def list_endpoints(
        self, principal: CurrentUser, tx: Transaction, webhooks: Webhooks
    ) -> list[Endpoint]:
        return await webhooks.list_endpoints(tx, principal.user_id)

    @get("/{endpoint_id:int}")
    async def get_endpoint(
        self, endpoint_id: ResourceId, principal: CurrentUser, tx: Transaction, webhooks: Webhooks
    ) -> Endpoint:
        """One endpoint, with why it was disabled if it was."""
        return await webhooks.get(tx, principal.user_id, endpoint_id)

    @patch("/{endpoint_id:int}", responses=problems(422))
    async def update(
        self,
        endpoint_id: ResourceId,
        data: JSONBody[UpdateEndpoint],
        principal: CurrentUser,
        tx: Transaction,
        webhooks: Webhooks,
    ) -> Endpoint:
        """Change the URL, events, description, or enable/disable it (enabling clears its failures)."""
        return await webhooks.update(tx, principal.user_id, endpoint_id, data)

    @delete("/{endpoint_id:int}", status_code=204)
    async def delete_endpoint(
        self, endpoint_id: ResourceId, principal: CurrentUser, tx: Transaction, webhooks: Webhooks
    ) -> None:
        """Remove the endpoint and its deliveries; pending ones are never sent."""
        await webhooks.delete(tx, principal.user_id, endpoint_id)

    @post("/{endpoint_id:int}/rotate-secret", status_code=200)
    async def rotate_secret(
        self, endpoint_id: ResourceId, principal: CurrentUser, tx: Transaction, webhooks: Webhooks
    ) -> EndpointWithSecret:
        """A new signing secret, shown this once; every later attempt is signed with it."""
        return await webhooks.rotate_secret(tx, principal.user_id, endpoint_id)

    @post("/{endpoint_id:int}/test", status_code=202, responses=problems(409))
    async def send_test(
        self, endpoint_id: ResourceId, principal: CurrentUser, tx: Transaction, webhooks: Webhooks
    ) -> Delivery:
        """Send a ``webhook.test`` event to this endpoint now (409 while it is disabled)."""
        return await webhooks.send_test(tx, principal.user_id, endpoint_id)

    @get("/{endpoint_id:int}/deliveries")
    async def list_deliveries(
        self,
        endpoint_id: ResourceId,
        principal: CurrentUser,
        tx: Transaction,
        webhooks: Webhooks,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> DeliveryPage:
        """The endpoint's deliveries, newest first, each with every attempt (status, latency,
        the start of the answer, the error)."""
        return await webhooks.deliveries(tx, principal.user_id, endpoint_id, cursor=cursor, limit=limit)

    @post("/{endpoint_id:int}/deliveries/{delivery_id:int}/replay", status_code=202, responses=problems(409))
    async def replay(
        self,
        endpoint_id: ResourceId,
        delivery_id: ResourceId,
        principal: CurrentUser,
        tx: Transaction,
        webhooks: Webhooks,
    ) -> Delivery:
        """Deliver the event again now, with the same ``webhook-id`` (receivers deduplicate by it);
        a delivery waiting for a retry is brought forward. 409 while an attempt is in flight."""
        return await webhooks.replay(tx, principal.user_id, endpoint_id, delivery_id)


ROUTES: list[ControllerRouterHandler] = [WebhooksController]
