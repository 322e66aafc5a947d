"""Compliance: the suppression list, one-click unsubscribe, domain rails, enforced at dispatch."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import text

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_shared import contracts as c
from tests.queue.world import FakeClock, World


async def _campaign_to(world: World, user: int, account: int, addresses: list[str], **fields: Any) -> int:
    """A launched campaign to ``addresses``; its id."""
    html = fields.pop("html", "<p>Hi {{name}}</p>")
    world.fake.add_template(user, 7, subject="Hello {{name}}", html=html)
    body = {"name": "Outreach", "account_id": account, "template_id": 7, "template_version": 1, **fields}
    listing = "email,name\n" + "".join(f"{address},N{i}\n" for i, address in enumerate(addresses))
    return await world.launch_campaign(user, body, listing)


async def _suppress(world: World, user: int, **entry: str) -> Any:
    return await world.client.post("/v1/suppressions", json=entry, headers=world.auth(user))


async def _states(world: World, campaign_id: int) -> dict[str, tuple[str, str | None]]:
    assert world.infra.engine is not None
    async with world.infra.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT m.to_addrs[1], m.state, m.outcome_reason FROM queue.messages m "
                "WHERE m.campaign_id = :id"
            ),
            {"id": campaign_id},
        )
        return {address: (state, reason) for address, state, reason in rows}


async def test_entries_are_added_once_listed_newest_first_and_removed(world: World) -> None:
    """201 for a new entry, 200 for one already there; the list pages; DELETE takes it off."""
    user = world.new_id()
    first = await _suppress(world, user, address="Bob@Example.com")
    assert first.status_code == 201, first.text
    assert first.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "kind": "address",
        "value": "bob@example.com",
        "reason": "manual",
        "source": "added through the API",
        "created_at": "",
    }
    again = await _suppress(world, user, address="bob@example.com")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert (await _suppress(world, user, domain="@Acme.io")).status_code == 201
    page = await world.client.get("/v1/suppressions?limit=1", headers=world.auth(user))
    assert [e["value"] for e in page.json()["items"]] == ["acme.io"]
    rest = await world.client.get(
        f"/v1/suppressions?limit=1&cursor={page.json()['next_cursor']}", headers=world.auth(user)
    )
    assert [e["value"] for e in rest.json()["items"]] == ["bob@example.com"]
    assert rest.json()["next_cursor"] is None
    other = world.new_id()
    gone = await world.client.delete(f"/v1/suppressions/{first.json()['id']}", headers=world.auth(other))
    assert gone.status_code == 404
    removed = await world.client.delete(f"/v1/suppressions/{first.json()['id']}", headers=world.auth(user))
    assert removed.status_code == 204


async def test_a_bad_entry_says_what_to_fix(world: World) -> None:
    """Not an address, not a domain, or both at once: 422 naming the field."""
    user = world.new_id()
    bad_address = await _suppress(world, user, address="not an address")
    assert bad_address.status_code == 422
    assert "address" in bad_address.json()["detail"]
    bad_domain = await _suppress(world, user, domain="localhost")
    assert bad_domain.status_code == 422
    assert "example.com" in bad_domain.json()["detail"]
    both = await _suppress(world, user, address="a@b.com", domain="b.com")
    assert both.status_code == 422
    assert "either address or domain" in both.json()["detail"]


async def test_a_csv_import_adds_what_it_can_and_reports_the_rest(world: World) -> None:
    """Addresses and domains are added once; rows that are neither are reported by row number."""
    user = world.new_id()
    await _suppress(world, user, address="known@example.com")
    data = "email,domain\nknown@example.com,\nnew@example.com,acme.io\nnonsense,\n,bad domain\n"
    imported = await world.client.post(
        "/v1/suppressions/import",
        content=data.encode(),
        headers={**world.auth(user), "content-type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert (report["added"], report["already_suppressed"]) == (2, 1)
    assert [problem["row"] for problem in report["problems"]] == [4, 5]
    wrong_type = await world.client.post(
        "/v1/suppressions/import", json={"email": "x@y.com"}, headers=world.auth(user)
    )
    assert wrong_type.status_code == 415
    no_column = await world.client.post(
        "/v1/suppressions/import",
        content=b"name\nBob\n",
        headers={**world.auth(user), "content-type": "text/csv"},
    )
    assert no_column.status_code == 422
    assert "'address'" in no_column.json()["detail"]


async def test_the_export_is_spreadsheet_safe(world: World) -> None:
    """An address that looks like a formula is exported as text, never run by a spreadsheet."""
    user = world.new_id()
    assert (await _suppress(world, user, address="=1+1@example.com")).status_code == 201
    exported = await world.client.get("/v1/suppressions/export.csv", headers=world.auth(user))
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["kind", "value", "reason", "source", "created_at"]
    assert rows[1][:3] == ["address", "'=1+1@example.com", "manual"]


async def test_suppressed_addresses_and_domains_are_cancelled_at_dispatch(
    world: World, dispatcher: Dispatcher
) -> None:
    """A row suppressed after launch is never sent: cancelled as suppressed, the rest dispatched."""
    user, account = await world.user_with_account()
    campaign = await _campaign_to(world, user, account, ["ada@example.com", "bob@acme.io", "cy@acme.io"])
    report = await world.client.get(f"/v1/campaigns/{campaign}/report", headers=world.auth(user))
    assert report.json()["suppressed"] == 0
    await _suppress(world, user, address="ADA@example.com")
    await _suppress(world, user, domain="acme.io")
    report = await world.client.get(f"/v1/campaigns/{campaign}/report", headers=world.auth(user))
    assert report.json()["suppressed"] == 3
    assert await dispatcher.dispatch_due_messages() == 0
    assert await world.commands() == []
    states = await _states(world, campaign)
    assert set(states.values()) == {("cancelled", "suppressed")}


async def test_another_users_list_does_not_apply(world: World, dispatcher: Dispatcher) -> None:
    """Suppression is per user: someone else's entry stops nothing of mine."""
    user, account = await world.user_with_account()
    await _suppress(world, world.new_id(), address="ada@example.com")
    campaign = await _campaign_to(world, user, account, ["ada@example.com"])
    assert await dispatcher.dispatch_due_messages() == 1
    assert (await _states(world, campaign))["ada@example.com"][0] == "dispatched"


async def test_campaign_mail_carries_its_unsubscribe_link_and_personal_mail_does_not(
    world: World, dispatcher: Dispatcher
) -> None:
    """Each campaign command has its row's link; a one-off email and an opted-out campaign none."""
    user, account = await world.user_with_account()
    await _campaign_to(world, user, account, ["ada@example.com", "bob@example.com"])
    await world.compose(user, account, to=["cy@example.com"])
    assert await dispatcher.dispatch_due_messages() == 3
    commands = {command.to[0]: command for command in await world.commands()}
    links = [commands[a].unsubscribe_url for a in ("ada@example.com", "bob@example.com")]
    assert all(link and link.startswith("http://127.0.0.1:8080/v1/unsubscribe/") for link in links)
    assert links[0] != links[1]  # each row its own link
    assert commands["cy@example.com"].unsubscribe_url is None
    await _campaign_to(world, user, account, ["dee@example.com"], list_unsubscribe=False)
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert command.to == ["dee@example.com"]
    assert command.unsubscribe_url is None


async def _unsubscribe_link(
    world: World, dispatcher: Dispatcher, user: int, account: int, address: str
) -> str:
    await _campaign_to(world, user, account, [address])
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert isinstance(command, c.SendEmail)
    assert command.unsubscribe_url is not None
    return command.unsubscribe_url.removeprefix("http://127.0.0.1:8080")


async def test_one_click_unsubscribe_stops_the_address_in_every_campaign_by_the_next_tick(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """The GET page changes nothing; the POST (no session) suppresses the address at once, and
    the next tick cancels what was still to go to it, in any campaign; a second POST is the same."""
    user, account = await world.user_with_account()
    link = await _unsubscribe_link(world, dispatcher, user, account, "ada@example.com")
    later = await _campaign_to(world, user, account, ["ada@example.com", "bob@example.com"])
    page = await world.client.get(link)
    assert page.status_code == 200
    assert "<form method=post" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    listed = await world.client.get("/v1/suppressions", headers=world.auth(user))
    assert listed.json()["items"] == []
    one_click = await world.client.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200, one_click.text
    assert "unsubscribed" in one_click.text
    again = await world.client.post(link, content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200
    entries = (await world.client.get("/v1/suppressions", headers=world.auth(user))).json()["items"]
    assert [(e["value"], e["reason"]) for e in entries] == [("ada@example.com", "unsubscribe")]
    clock.advance(seconds=1)
    assert await dispatcher.dispatch_due_messages() == 1
    assert [command.to for command in await world.commands()] == [["bob@example.com"]]
    assert (await _states(world, later))["ada@example.com"] == ("cancelled", "suppressed")


async def test_a_forged_or_stale_link_does_nothing_and_says_so(world: World, dispatcher: Dispatcher) -> None:
    """A token not sealed here, or of a deleted row, answers 404 with a page, on GET and POST."""
    user, account = await world.user_with_account()
    link = await _unsubscribe_link(world, dispatcher, user, account, "ada@example.com")
    forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    for method in ("GET", "POST"):
        answer = await world.client.request(method, forged)
        assert answer.status_code == 404
        assert "not valid" in answer.text
    assert (await world.client.get("/v1/unsubscribe/not*a*token")).status_code == 400


async def test_the_template_gets_the_rows_link_and_the_report_warns_without_one(
    world: World, dispatcher: Dispatcher
) -> None:
    """{{ unsubscribe_url }} renders to the row's link; a template without it is warned about."""
    user, account = await world.user_with_account()
    silent = await _campaign_to(world, user, account, ["ada@example.com"])
    report = await world.client.get(f"/v1/campaigns/{silent}/report", headers=world.auth(user))
    assert any("unsubscribe_url" in warning for warning in report.json()["warnings"])
    linked = await _campaign_to(
        world,
        user,
        account,
        ["bob@example.com"],
        html='<p>Hi {{name}} <a href="{{unsubscribe_url}}">stop</a></p>',
    )
    report = await world.client.get(f"/v1/campaigns/{linked}/report", headers=world.auth(user))
    assert report.json()["warnings"] == []
    row = await world.client.get(f"/v1/campaigns/{linked}/rows/1", headers=world.auth(user))
    assert "/v1/unsubscribe/" in row.json()["html"]
    assert "unsubscribe_url" not in row.json()["fields"]


async def test_the_domain_cap_holds_the_rest_for_the_next_local_day(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """At most domain_daily_cap messages a day to one recipient domain; others wait until the
    campaign's next local midnight, then go."""
    user, account = await world.user_with_account()
    addresses = [f"p{i}@bigcorp.com" for i in range(5)] + ["solo@small.io"]
    campaign = await _campaign_to(
        world, user, account, addresses, schedule={"timezone": "Europe/Paris", "domain_daily_cap": 2}
    )
    assert sorted(await _drain(world, dispatcher, clock)) == [
        "p0@bigcorp.com",
        "p1@bigcorp.com",
        "solo@small.io",
    ]
    clock.advance(hours=1)
    assert await _drain(world, dispatcher, clock) == []
    states = await _states(world, campaign)
    assert sorted(a for a, (state, _) in states.items() if state == "scheduled") == [
        "p2@bigcorp.com",
        "p3@bigcorp.com",
        "p4@bigcorp.com",
    ]
    clock.advance(days=1)
    assert sorted(await _drain(world, dispatcher, clock)) == ["p2@bigcorp.com", "p3@bigcorp.com"]


async def _drain(world: World, dispatcher: Dispatcher, clock: FakeClock) -> list[str]:
    """Tick until a tick dispatches nothing; the addresses dispatched."""
    while await dispatcher.dispatch_due_messages():
        clock.advance(seconds=1)
    return [command.to[0] for command in await world.commands()]


async def test_the_bulk_sender_report_counts_mail_to_personal_gmail(world: World) -> None:
    """Each of the user's own sending domains, with its count against Gmail's threshold."""
    user, _ = await world.user_with_account(email="sales@startup.io")
    report = await world.client.get("/v1/senders/bulk-sender-report", headers=world.auth(user))
    assert report.status_code == 200, report.text
    assert report.json() == [
        {"domain": "startup.io", "personal_gmail_last_24h": 0, "threshold": 5000, "warning": None}
    ]
