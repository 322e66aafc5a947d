"""A three-step sequence to 200 recipients, end to end through the gateway, in both topologies.

The Google emulator answers by itself (its rules): every address at ``replies.example.com``
replies, ``ooo.example.com`` auto-replies and ``bounces.example.com`` hard-bounces a few seconds
after a message reaches it. From an account with reply detection (``gmail.metadata``) the
sender's mailbox watcher finds those answers in our threads and the queue stops (or, for an
auto-reply, delays) the recipient's sequence; five more rows are marked replied by the user. The
same campaign from a send-only account stops only the user-marked rows, and the API says plainly
that replies are not watched.

Time runs fast: one hour of a step's delay lasts ``MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS`` here
(the harness's environment), so a 3-hour delay is seconds, long enough for an answer to land
before the next step is due.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support import eventually
from tests.system.harness import (
    RunningSystem,
    User,
    connect_gmail,
    emulator_messages,
    header,
    sign_up,
    upload_and_launch,
)
from tests.system.test_journey import raise_limits

pytestmark = pytest.mark.system

DELAY_HOURS = 3  # between steps; seconds here (see the module's docstring)
REPLIERS, BOUNCERS, AUTO_REPLIERS, MARKED, PLAIN = 20, 10, 5, 5, 160


def _recipients() -> list[str]:
    return (
        [f"r{i}@replies.example.com" for i in range(REPLIERS)]
        + [f"b{i}@bounces.example.com" for i in range(BOUNCERS)]
        + [f"o{i}@ooo.example.com" for i in range(AUTO_REPLIERS)]
        + [f"m{i}@example.net" for i in range(MARKED)]
        + [f"p{i}@example.net" for i in range(PLAIN)]
    )


@pytest.fixture(scope="module")
async def watched(system: RunningSystem) -> AsyncIterator[User]:
    user = await sign_up(system, "sequences-watched")
    await connect_gmail(user, system.base_url, reply_detection=True)
    await raise_limits(system, user)  # 200 recipients, 3 steps each, in a minute
    yield user
    await user.client.aclose()


@pytest.fixture(scope="module")
async def send_only(system: RunningSystem) -> AsyncIterator[User]:
    user = await sign_up(system, "sequences-send-only")
    await connect_gmail(user, system.base_url)
    await raise_limits(system, user)
    yield user
    await user.client.aclose()


async def _template(user: User, subject: str, html: str) -> dict[str, Any]:
    response = await user.client.post(
        "/v1/templates/", json={"name": subject, "subject": subject, "html": html}
    )
    assert response.status_code == 201, response.text
    template: dict[str, Any] = response.json()
    return template


async def _launch_sequence(user: User, addresses: list[str]) -> int:
    first = await _template(user, "Hello {{ name }}", "<p>Hi {{ name }}</p>")
    second = await _template(user, "unused", "<p>Just checking in, {{ name }}.</p>")
    third = await _template(user, "unused", "<p>Last note, {{ name }}.</p>")
    created = await user.client.post(
        "/v1/campaigns/",
        json={
            "name": "Three steps",
            "account_id": user.account_id,
            "template_id": first["id"],
            "template_version": first["version"],
            "list_unsubscribe": False,
            "steps": [
                {"template_id": t["id"], "template_version": t["version"], "delay_hours": DELAY_HOURS}
                for t in (second, third)
            ],
        },
    )
    assert created.status_code == 201, created.text
    campaign_id: int = created.json()["id"]
    await upload_and_launch(user, campaign_id, addresses)
    return campaign_id


async def _mark_replied(user: User, campaign_id: int, addresses: list[str], marked: list[str]) -> None:
    """Once every first email went, the user marks rows replied (rows are numbered from 1 in the
    order of the upload): before their follow-ups are due."""

    async def first_step_sent() -> bool:
        progress = (await user.client.get(f"/v1/campaigns/{campaign_id}/progress")).json()
        return bool(progress["steps"].get("1", {}).get("sent", 0) == len(addresses))

    await eventually(first_step_sent, timeout=30, interval=0.2)
    for address in marked:
        row = addresses.index(address) + 1
        response = await user.client.post(
            f"/v1/campaigns/{campaign_id}/rows/{row}/stop", json={"reason": "replied"}
        )
        assert response.status_code == 200, response.text


async def _completed(user: User, campaign_id: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        campaign = (await user.client.get(f"/v1/campaigns/{campaign_id}")).json()
        return campaign if campaign["state"] == "completed" else None

    try:
        return await eventually(done, timeout=80, interval=0.5)
    except AssertionError:
        progress = (await user.client.get(f"/v1/campaigns/{campaign_id}/progress")).json()
        raise AssertionError(f"campaign {campaign_id} did not complete: {progress}") from None


async def _results(user: User, campaign_id: int) -> list[dict[str, str]]:
    response = await user.client.get(f"/v1/campaigns/{campaign_id}/results.csv")
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def _sent_by_recipient(mails: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_recipient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for mail in mails:
        if "SENT" in mail["labelIds"]:
            by_recipient[mail["to"][0]].append(mail)
    for chain in by_recipient.values():
        chain.sort(key=lambda mail: mail["internalDate"])
    return by_recipient


def _assert_threaded(chain: list[dict[str, Any]]) -> None:
    """Each follow-up is in the first email's Gmail thread, answers the previous email and carries
    the thread's whole References chain, under "Re: " and the first subject."""
    first = chain[0]
    for previous, follow_up in itertools.pairwise(chain):
        assert follow_up["threadId"] == first["threadId"]
        assert header(follow_up, "In-Reply-To") == [previous["rfc822MessageId"]]
        [references] = header(follow_up, "References")
        assert references.split() == [mail["rfc822MessageId"] for mail in chain[: chain.index(follow_up)]]
        assert follow_up["subject"] == f"Re: {first['subject']}"


async def test_replies_bounces_and_user_marks_stop_the_sequence_and_auto_replies_delay_it(
    system: RunningSystem, watched: User
) -> None:
    addresses = _recipients()
    marked = [a for a in addresses if a.startswith("m")]
    campaign_id = await _launch_sequence(watched, addresses)
    await _mark_replied(watched, campaign_id, addresses, marked)
    campaign = await _completed(watched, campaign_id)
    assert campaign["replies_watched"] is True

    chains = _sent_by_recipient(await emulator_messages(system.emulator_url, watched.gmail or ""))
    steps_sent = Counter(len(chains[address]) for address in addresses)
    kind = {address: address.split("@")[1] for address in addresses}
    for address in addresses:
        chain = chains[address]
        if kind[address] in ("replies.example.com", "bounces.example.com") or address in marked:
            assert len(chain) == 1, (address, [m["subject"] for m in chain])
        else:
            assert len(chain) == 3, (address, [m["subject"] for m in chain])
            _assert_threaded(chain)
    stopped = REPLIERS + BOUNCERS + MARKED
    assert steps_sent == {1: stopped, 3: len(addresses) - stopped}

    # An auto-reply delays the next step: it went a full delay after the out-of-office answer,
    # so later than the plain rows' (sent a full delay after their previous step).
    gap = {
        address: (chains[address][1]["internalDate"] - chains[address][0]["internalDate"]) / 1000
        for address in addresses
        if len(chains[address]) == 3
    }
    ooo = [gap[a] for a in addresses if kind[a] == "ooo.example.com"]
    plain = sorted(gap[a] for a in addresses if a.startswith("p"))
    assert min(ooo) > plain[len(plain) // 2]

    results = await _results(watched, campaign_id)
    stops = {row["address"]: row["stop_reason"] for row in results}
    assert Counter(stops.values()) == {
        "replied": REPLIERS + MARKED,
        "bounced": BOUNCERS,
        "": AUTO_REPLIERS + PLAIN,
    }
    first_step = {row["address"]: row for row in results if row["step"] == "1"}
    assert {first_step[a]["response"] for a in addresses if kind[a] == "replies.example.com"} == {"reply"}
    assert {first_step[a]["response"] for a in addresses if kind[a] == "bounces.example.com"} == {"bounce"}
    assert {first_step[a]["response"] for a in addresses if kind[a] == "ooo.example.com"} == {"auto_reply"}
    assert {first_step[a]["response"] for a in marked} == {""}  # the user said so; nothing arrived
    # A line per email. A stopped row's follow-up is either never built (the stop came first) or
    # built and cancelled by the stop, with the stop's reason; it is never sent.
    sent_lines = Counter(row["step"] for row in results if row["state"] == "sent")
    assert sent_lines == {"1": len(addresses), "2": len(addresses) - stopped, "3": len(addresses) - stopped}
    cancelled = [row for row in results if row["state"] != "sent"]
    assert {row["address"] for row in cancelled} <= {a for a in addresses if stops[a]}
    assert {(row["state"], row["step"], row["reason"]) for row in cancelled} <= {
        ("cancelled", "2", "replied"),
        ("cancelled", "2", "bounced"),
    }

    progress = (await watched.client.get(f"/v1/campaigns/{campaign_id}/progress")).json()
    assert progress["stopped"] == {"replied": REPLIERS + MARKED, "bounced": BOUNCERS}
    found = (progress["replied"], progress["bounced"], progress["auto_replied"])
    assert found == (REPLIERS, BOUNCERS, AUTO_REPLIERS)  # what the watcher found; marks are the user's
    steps = {step: counts.get("sent", 0) for step, counts in progress["steps"].items()}
    assert steps == {"1": len(addresses), "2": len(addresses) - stopped, "3": len(addresses) - stopped}

    # A hard bounce suppresses the address for the user's later campaigns.
    listed = (await watched.client.get("/v1/suppressions", params={"limit": 100})).json()["items"]
    bounced = {entry["value"] for entry in listed if entry["reason"] == "hard_bounce"}
    assert bounced == {a for a in addresses if kind[a] == "bounces.example.com"}


async def test_a_send_only_account_stops_only_what_the_user_marks_and_says_replies_are_not_watched(
    system: RunningSystem, send_only: User
) -> None:
    addresses = _recipients()
    marked = [a for a in addresses if a.startswith("m")]
    campaign_id = await _launch_sequence(send_only, addresses)
    campaign = (await send_only.client.get(f"/v1/campaigns/{campaign_id}")).json()
    assert campaign["replies_watched"] is False
    assert "gmail.send" in campaign["replies_watched_detail"]
    await _mark_replied(send_only, campaign_id, addresses, marked)
    await _completed(send_only, campaign_id)

    chains = _sent_by_recipient(await emulator_messages(system.emulator_url, send_only.gmail or ""))
    for address in addresses:
        chain = chains[address]
        if address in marked:
            assert len(chain) == 1
        else:
            # Nothing reads the mailbox: repliers, bouncers and auto-repliers get every step.
            assert len(chain) == 3, address
            _assert_threaded(chain)
    results = await _results(send_only, campaign_id)
    stops = {row["address"]: row["stop_reason"] for row in results}
    assert Counter(stops.values()) == {"replied": MARKED, "": len(addresses) - MARKED}
    assert {row["response"] for row in results} == {""}
