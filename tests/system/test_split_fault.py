"""A fault run in the split topology: processes killed mid-campaign, every message still sent once.

The compose topology (``mailmerger run-split``: auth, templates, queue, storage, 2 dispatchers,
3 sender workers, the emulator and a local S3 as processes of their own, behind nginx) sends a
1,000-recipient campaign with per-row attachments. While it is being delivered, two sender workers
and the queue API process are killed with SIGKILL and auth is stopped with SIGTERM; the
supervisor starts each again (as compose's ``restart: unless-stopped`` would). The campaign must
still complete with, per RFC Message-ID at the emulator, nothing lost, nothing duplicated and
nothing unexpected (tests/fault/checker.py).

The account is paced at 3,000 sends a minute (~50/s, about 20 s for the campaign) so that the
kills land mid-campaign, and each send takes a second at the emulator so that every sender always
has Gmail calls in flight when it is killed: the emulator has such a message (its whole request
was in), but the killed sender never heard so. The account grants ``gmail.readonly`` besides
``gmail.send`` (as the accounts of tests/fault do): a send cut off by a kill is then looked up in
the mailbox by its Message-ID once its claim settles, and sent again only if absent. With ``gmail.send`` alone
nothing can be looked up, and such a message ends ``unconfirmed`` by design (never sent twice).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mailmerger_shared.settings import DEV_SYSTEM_MAIL_ADDRESS
from tests.fault.checker import Row, check
from tests.support import eventually
from tests.system.conftest import start_split, stop_split
from tests.system.harness import SplitSystem, emulator_counts, sign_up
from tests.system.test_journey import RECIPIENTS, launch, ledger_by_address, prepare_campaign

pytestmark = [pytest.mark.system, pytest.mark.split, pytest.mark.fault, pytest.mark.timeout(300)]

PER_MINUTE = 3000
READ_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
FAULT_ENV = {
    # Accounts connected in this run can read their mailbox: what reconciliation needs.
    "MM_GOOGLE_SCOPES": json.dumps(
        ["openid", "email", "profile", "https://www.googleapis.com/auth/gmail.send", READ_SCOPE]
    ),
    # Warnings and errors only: the log shown on failure is not 1,000 "delivery settled" lines.
    "MM_LOG_LEVEL": "WARNING",
    # The account's pace (the dispatcher's ceiling for every account): ~50 sends/s.
    "MM_DISPATCH_PER_MINUTE_LIMIT": str(PER_MINUTE),
    # A claim abandoned by a killed sender settles in seconds, not minutes (as in tests/fault).
    "MM_SENDER_PREPARE_TIMEOUT_SECONDS": "2",
    "MM_SENDER_SETTLE_MARGIN_SECONDS": "3",
    "MM_SENDER_BACKOFF_MAX_SECONDS": "4",
    "MM_SENDER_SHUTDOWN_GRACE_SECONDS": "5",
    "MM_GMAIL_REQUEST_TIMEOUT": "5",
}
KILLED = ("sender-worker-1", "sender-worker-2", "queue")
RESTARTED = ("auth",)
# Kill once this many messages reached the emulator (the campaign is well under way, far from done).
KILL_AFTER = 150
SEND_LATENCY_MS = 1000


@pytest.fixture(scope="module")
async def split(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SplitSystem]:
    system = await start_split(service_env, tmp_path_factory.mktemp("split-fault"), FAULT_ENV)
    try:
        yield system
    finally:
        stop_split(system)


async def delivered(split: SplitSystem) -> int:
    async with httpx.AsyncClient(base_url=split.emulator_url, timeout=10) as client:
        response = await client.get("/_emulator/messages/total")
        response.raise_for_status()
        total: int = response.json()["total"]
        return total


async def answers_ready(port: int) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200
        except httpx.TransportError:
            return False


async def slow_sends(split: SplitSystem, gmail: str) -> None:
    """Every send of ``gmail`` answers SEND_LATENCY_MS late: each sender always has sends in flight."""
    rule = {"kind": "latency", "user": gmail, "methods": ["messages.send"], "latency_ms": SEND_LATENCY_MS}
    async with httpx.AsyncClient(base_url=split.emulator_url, timeout=10) as client:
        response = await client.post("/_emulator/faults", json=[rule])
        assert response.status_code == 201, response.text


async def progress(client: httpx.AsyncClient, campaign_id: int) -> dict[str, Any] | None:
    """The campaign's progress, or None while the gateway cannot reach the queue API."""
    try:
        response = await client.get(f"/v1/campaigns/{campaign_id}/progress")
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    answer: dict[str, Any] = response.json()
    return answer


async def test_killed_senders_and_queue_and_restarted_auth_lose_and_duplicate_nothing(
    split: SplitSystem,
) -> None:
    """kill -9 two sender workers and the queue API mid-campaign, restart auth: 0 lost, 0 duplicated."""
    user = await sign_up(split, "faulty")
    try:
        prepared = await prepare_campaign(split, user)
        assert prepared.build["valid"] == RECIPIENTS, prepared.build
        [account] = [s for s in (await user.client.get("/v1/senders/")).json() if s["email"] == user.gmail]
        assert READ_SCOPE in account["scopes"], account
        before = {name: split.process(name) for name in (*KILLED, *RESTARTED)}
        await slow_sends(split, user.gmail or "")
        await launch(user, prepared.campaign_id)

        # Mid-campaign: some messages delivered, most still to go.
        at_kill = await eventually(lambda: _at_least(split, KILL_AFTER), timeout=60, interval=0.05)
        for name in KILLED:
            os.kill(before[name]["pid"], signal.SIGKILL)
        os.kill(before["auth"]["pid"], signal.SIGTERM)
        after_kill = await delivered(split)
        clock = asyncio.get_running_loop().time
        killed_at = clock()
        print(f"killed {KILLED}, stopped {RESTARTED} at {at_kill}..{after_kill} delivered")
        assert KILL_AFTER <= at_kill <= after_kill < RECIPIENTS, (at_kill, after_kill)

        # Each is started again, under a new pid, and answers /ready on its port.
        back_after: dict[str, tuple[float, int]] = {}  # seconds after the kills, messages delivered

        async def restarted() -> bool:
            for name, was in before.items():
                now = split.process(name)
                if name in back_after or now["starts"] != was["starts"] + 1 or now["pid"] == was["pid"]:
                    continue
                if await answers_ready(now["port"]):
                    back_after[name] = (round(clock() - killed_at, 1), await delivered(split))
            return len(back_after) == len(before)

        await eventually(restarted, timeout=60, interval=0.2)
        print(f"back (seconds after the kills, messages delivered then): {back_after}")

        async def completed() -> dict[str, Any] | None:
            answer = await progress(user.client, prepared.campaign_id)
            return answer if answer and answer["state"] == "completed" else None

        final = await eventually(completed, timeout=150, interval=0.5)
        print(f"completed {clock() - killed_at:.1f} s after the kills: {final}")
        assert {state: n for state, n in final["counts"].items() if n} == {"sent": RECIPIENTS}, final

        ledger = list((await ledger_by_address(user.client, prepared.campaign_id)).values())
        assert len(ledger) == RECIPIENTS
        attempts = collections.Counter(e["attempt"] for e in ledger)
        print(f"messages by attempt: {dict(attempts)}")
        # The kills cut sends in flight: those were sent again once their claims settled.
        assert sum(n for attempt, n in attempts.items() if attempt > 1) > 0, attempts
        rows = [Row(e["rfc_message_id"], e["state"], e["gmail_id"], e["outcome_reason"]) for e in ledger]
        # Every mailbox of the emulator: a copy sent from anywhere but this campaign is unexpected,
        # except the system's own letters (the sign-up's confirmation link).
        copies = (await emulator_counts(split.emulator_url))["counts"]
        letters = (await emulator_counts(split.emulator_url, DEV_SYSTEM_MAIL_ADDRESS))["counts"]
        copies = {rfc: n for rfc, n in copies.items() if rfc not in letters}
        verdict = check(rows, rows, copies)
        assert verdict.valid, verdict.summary()
        assert verdict.sent == RECIPIENTS
        assert sum(copies.values()) == RECIPIENTS
        # None of the processes was restarted beyond the faults (no crash of its own).
        starts = {name: entry["starts"] for name, entry in split.state()["processes"].items()}
        assert starts == {name: 2 if name in before else 1 for name in starts}, starts
    finally:
        await user.client.aclose()


async def _at_least(split: SplitSystem, count: int) -> int | None:
    total = await delivered(split)
    return total if total >= count else None
