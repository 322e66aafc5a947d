"""The authorisation matrix, generated from every route of every service app.

Each route must carry an explicit decision (routes.py); user routes refuse anonymous calls;
internal routes admit only the calling service they name, with its own credential, and are never
routed by the gateway;
every route that names a resource answers 404 to a user who does not own it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mailmerger.gateway import service_for
from mailmerger.services import SERVICES
from mailmerger_shared.web.internal import caller_headers
from tests.security.routes import (
    INTERNAL,
    INTERNAL_CALLERS,
    OWNED,
    PUBLIC,
    SELF,
    Endpoint,
    discover,
    fill,
    fill_path,
)
from tests.system.harness import PDF, SystemUnderTest, User, connect_gmail, sign_up

pytestmark = pytest.mark.system

USER_ROUTES = sorted(SELF | set(OWNED))
PLACEHOLDER_IDS: defaultdict[str, Any] = defaultdict(lambda: 1, path="openapi.yaml", kind="resume")


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


@dataclass
class Owner:
    user: User
    ids: dict[str, Any]
    other: User


async def create_owned_resources(owner: User) -> dict[str, Any]:
    """One of everything a user can own, each created through the gateway."""
    client = owner.client
    template = (
        await client.post(
            "/v1/templates/", json={"name": "Mine", "subject": "Hi {{ name }}", "html": "<p>{{ name }}</p>"}
        )
    ).json()
    attachment = (
        await client.post(
            "/v1/attachments/",
            files={"file": ("resume.pdf", PDF, "application/pdf")},
            data={"kind": "resume"},
        )
    ).json()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    email = (
        await client.post(
            "/v1/emails/",
            json={
                "account_id": owner.account_id,
                "to": ["friend@example.org"],
                "subject": "Later",
                "html": "<p>later</p>",
                "send_at": later,
            },
        )
    ).json()
    campaign = (
        await client.post(
            "/v1/campaigns/",
            json={
                "name": "Mine",
                "account_id": owner.account_id,
                "template_id": template["id"],
                "template_version": 1,
            },
        )
    ).json()
    built = await client.put(
        f"/v1/campaigns/{campaign['id']}/recipients", json={"rows": [{"email": "c@example.org", "name": "C"}]}
    )
    assert built.status_code == 200, built.text
    queued = await client.post(
        "/api/queue/add-to-queue",
        json={"subject": "Held", "body": "<p>held</p>", "to_email": "held@example.org"},
    )
    assert queued.status_code == 200, queued.text
    legacy = (await client.get("/api/queue/get-email-queue")).json()["data"]["emails"]
    suppression = await client.post("/v1/suppressions", json={"address": "nobody@example.org"})
    assert suppression.status_code == 201, suppression.text
    # A receiver nobody listens on (127.0.0.1 is the harness's development allowlist).
    webhook = await client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}
    )
    assert webhook.status_code == 201, webhook.text
    tested = await client.post(f"/v1/webhooks/{webhook.json()['id']}/test")
    assert tested.status_code == 202, tested.text
    [delivery] = (await client.get(f"/v1/webhooks/{webhook.json()['id']}/deliveries")).json()["items"]
    return {
        "template_id": template["id"],
        "version": template["version"],
        "attachment_id": attachment["id"],
        "email_id": email["id"],
        "campaign_id": campaign["id"],
        "row": 1,
        "account_id": owner.account_id,
        "legacy_email_id": next(e["eid"] for e in legacy if e["subject"] == "Held"),
        "suppression_id": suppression.json()["id"],
        "endpoint_id": webhook.json()["id"],
        "delivery_id": delivery["id"],
    }


@pytest.fixture(scope="module")
async def owner(system: SystemUnderTest) -> AsyncIterator[Owner]:
    first = await sign_up(system, "owner")
    await connect_gmail(first, system.base_url)
    second = await sign_up(system, "intruder")
    try:
        yield Owner(first, await create_owned_resources(first), second)
    finally:
        await first.client.aclose()
        await second.client.aclose()


async def call(
    client: httpx.AsyncClient, endpoint: Endpoint, ids: dict[str, Any], body: Any
) -> httpx.Response:
    url = fill_path(endpoint.path, ids)
    if body == "csv":
        return await client.request(
            endpoint.method, url, content=b"email\nx@example.org\n", headers={"Content-Type": "text/csv"}
        )
    if body is None:
        return await client.request(endpoint.method, url)
    return await client.request(endpoint.method, url, json=fill(body, ids))


async def test_every_route_has_exactly_one_access_decision(system: SystemUnderTest) -> None:
    """The routes the apps serve are exactly public + internal + self + owned, with no overlap."""
    served = {found.endpoint for found in discover(system.public.apps)}
    tables = [PUBLIC, INTERNAL, SELF, set(OWNED)]
    decided = set().union(*tables)
    assert sum(len(t) for t in tables) == len(decided), "a route is in two decision tables"
    assert sorted(served - decided) == [], "routes without an access decision (add them to routes.py)"
    assert sorted(decided - served) == [], "decisions for routes that no longer exist"


async def test_only_allow_listed_and_internal_routes_skip_user_authentication(
    system: SystemUnderTest,
) -> None:
    """The routes the JWT middleware skips are exactly the public allow-list and the internal routes."""
    exempt = {found.endpoint for found in discover(system.public.apps) if found.exempt_from_user_auth}
    assert sorted(exempt - (PUBLIC | INTERNAL)) == []
    assert sorted((PUBLIC | INTERNAL) - exempt) == []


@pytest.mark.parametrize("endpoint", USER_ROUTES, ids=endpoint_id)
async def test_user_route_without_a_token_is_401(gateway: httpx.AsyncClient, endpoint: Endpoint) -> None:
    """Through the gateway (which routes it to its owner), an anonymous call is a 401."""
    assert service_for(endpoint.path) == endpoint.service
    response = await gateway.request(endpoint.method, fill_path(endpoint.path, PLACEHOLDER_IDS))
    assert response.status_code == 401, response.text


async def _internal_call(
    system: SystemUnderTest, endpoint: Endpoint, headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=system.internal_url, timeout=10) as client:
        return await client.request(
            endpoint.method, fill_path(endpoint.path, PLACEHOLDER_IDS), headers=headers, json={}
        )


@pytest.mark.parametrize("endpoint", sorted(INTERNAL), ids=endpoint_id)
@pytest.mark.parametrize("credential", [None, "wrong-token"], ids=["no-credential", "wrong-credential"])
async def test_internal_route_without_its_callers_credential_is_401(
    system: SystemUnderTest, endpoint: Endpoint, credential: str | None
) -> None:
    """On the internal listener, the allowed caller without its right credential is a 401."""
    headers = caller_headers(INTERNAL_CALLERS[endpoint], credential) if credential else {}
    response = await _internal_call(system, endpoint, headers)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("endpoint", sorted(INTERNAL), ids=endpoint_id)
@pytest.mark.parametrize("caller", SERVICES)
async def test_internal_route_admits_only_the_caller_it_names(
    system: SystemUnderTest, endpoint: Endpoint, caller: str
) -> None:
    """Every internal route, and every service presenting the credential it holds (queue and sender
    hold one; the others have none to present): only the route's caller passes, the rest are 403."""
    token = system.credentials.get(caller, f"{caller}-holds-no-credential")
    response = await _internal_call(system, endpoint, caller_headers(caller, token))
    if caller == INTERNAL_CALLERS[endpoint]:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text


@pytest.mark.parametrize("endpoint", sorted(INTERNAL), ids=endpoint_id)
async def test_a_caller_cannot_pass_for_another_with_its_own_credential(
    system: SystemUnderTest, endpoint: Endpoint
) -> None:
    """Naming the allowed caller but presenting another service's real credential is a 401."""
    allowed = INTERNAL_CALLERS[endpoint]
    for other, token in system.credentials.items():
        if other != allowed:
            response = await _internal_call(system, endpoint, caller_headers(allowed, token))
            assert response.status_code == 401, response.text


@pytest.mark.parametrize("endpoint", sorted(INTERNAL), ids=endpoint_id)
async def test_internal_route_is_not_routed_by_the_gateway(
    gateway: httpx.AsyncClient, system: SystemUnderTest, endpoint: Endpoint
) -> None:
    """Even with the right caller's credential, the public gateway answers 404 for /internal/…."""
    response = await gateway.request(
        endpoint.method,
        fill_path(endpoint.path, PLACEHOLDER_IDS),
        headers=caller_headers(INTERNAL_CALLERS[endpoint], system.credentials[INTERNAL_CALLERS[endpoint]]),
    )
    assert response.status_code == 404


@pytest.mark.parametrize("endpoint", sorted(OWNED), ids=endpoint_id)
async def test_other_users_resource_is_404(owner: Owner, endpoint: Endpoint) -> None:
    """A second user naming the first user's resource gets 404, never 403 or the resource."""
    probe = OWNED[endpoint]
    response = await call(owner.other.client, endpoint, owner.ids, probe.body)
    assert response.status_code == probe.status, response.text
    if probe.data is not None:
        assert response.json()["data"] == probe.data


async def test_owners_resources_survive_the_other_users_attempts(owner: Owner) -> None:
    """After every attempt above, the owner's resources are all still there, unchanged."""
    client, ids = owner.user.client, owner.ids
    template = (await client.get(f"/v1/templates/{ids['template_id']}")).json()
    assert (template["name"], template["version"]) == ("Mine", 1)
    assert (await client.get(f"/v1/attachments/{ids['attachment_id']}")).json()["designated"] is True
    assert (await client.get(f"/v1/emails/{ids['email_id']}")).json()["state"] == "scheduled"
    assert (await client.get(f"/v1/campaigns/{ids['campaign_id']}")).json()["state"] == "draft"
    report = (await client.get(f"/v1/campaigns/{ids['campaign_id']}/report")).json()
    assert report["summary"]["rows"] == 1
    [sender] = (await client.get("/v1/senders/")).json()
    assert (sender["state"], sender["daily_limit"]) == ("connected", 2000)
    queue = (await client.get("/api/queue/get-email-queue")).json()["data"]["emails"]
    assert ids["legacy_email_id"] in [e["eid"] for e in queue]
    suppressions = (await client.get("/v1/suppressions")).json()["items"]
    assert [entry["id"] for entry in suppressions] == [ids["suppression_id"]]
    webhook = (await client.get(f"/v1/webhooks/{ids['endpoint_id']}")).json()
    assert webhook["description"] != "stolen"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/templates/",
        "/v1/emails/",
        "/v1/campaigns/",
        "/v1/attachments/",
        "/v1/senders/",
        "/v1/auth/gmail-accounts",
    ],
)
async def test_other_users_listing_shows_none_of_the_owners_resources(owner: Owner, path: str) -> None:
    """A second user's collections are empty while the owner's are not."""
    mine = (await owner.user.client.get(path)).json()
    theirs = (await owner.other.client.get(path)).json()

    def items(page):
        return page["items"] if isinstance(page, dict) else page

    assert items(mine) != []
    assert items(theirs) == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/emails/",
            {"account_id": "{account_id}", "to": ["a@example.org"], "subject": "s", "html": "<p>x</p>"},
        ),
        (
            "/v1/campaigns/",
            {
                "name": "x",
                "account_id": "{account_id}",
                "template_id": "{template_id}",
                "template_version": 1,
            },
        ),
        ("/v1/templates/validate", {"subject": "s", "html": "<p>{{ x }}</p>"}),
    ],
    ids=["compose-from-owners-account", "campaign-on-owners-template", "control-validate"],
)
async def test_naming_the_owners_ids_inside_a_body_is_refused(owner: Owner, path: str, body: Any) -> None:
    """Ids of the owner's account or template inside a second user's body are 404/422, never used."""
    response = await owner.other.client.post(path, json=fill(body, owner.ids))
    if path.endswith("validate"):
        assert response.status_code == 200  # the control: the intruder's own request works
    else:
        assert response.status_code in (404, 422), response.text
