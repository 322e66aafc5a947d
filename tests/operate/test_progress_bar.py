"""The CLI's campaign progress bar: a measured rate, an ETA, and a finished campaign called finished."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx

from mailmerger.apiclient import Api


class FakeClock:
    """Seconds that move only when the watcher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def progress(state: str, sent: int, pending: int, eta: float | None = None) -> dict[str, Any]:
    counts = {"sent": sent, "scheduled": pending} if pending else {"sent": sent}
    return {
        "campaign_id": 1,
        "state": state,
        "total": sent + pending,
        "counts": counts,
        "skipped": 0,
        "sent_per_minute": 0.0,
        "eta_seconds": eta,
    }


def watch(answers: list[dict[str, Any]]) -> list[str]:
    """The bar's lines while the campaign's progress goes through ``answers``, a second apart."""
    replies: Iterator[dict[str, Any]] = iter(answers)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=next(replies)))
    clock, out = FakeClock(), io.StringIO()
    api = Api("http://gateway", transport=transport)
    try:
        api.watch(1, out=out, interval=1.0, sleep=clock.sleep, clock=clock)
    finally:
        api.close()
    return out.getvalue().splitlines()


def test_the_bar_shows_the_rate_it_measured_and_the_time_left() -> None:
    """Ten sends a second apart: the bar says 10.0/s and, with 20 left, an ETA of 0:02."""
    lines = watch([progress("running", 0, 30), progress("running", 10, 20), progress("running", 30, 0)])
    assert "10/30 done: 10 sent, 0 failed, 10.0/s, ETA 0:02 (running)" in lines[1]


def test_the_servers_eta_is_shown_when_it_gives_one() -> None:
    """The server knows sending windows and caps: its ETA (an hour) wins over the measured rate."""
    lines = watch(
        [progress("running", 0, 30, 3600), progress("running", 10, 20, 3600), progress("completed", 30, 0)]
    )
    assert "ETA 1:00:00 (running)" in lines[1]


def test_a_campaign_with_nothing_pending_is_shown_completed_even_while_the_server_says_running() -> None:
    """The last line of a campaign whose every message is done says completed, never running."""
    lines = watch([progress("running", 0, 5), progress("running", 5, 0)])
    assert lines[-1].endswith("5/5 done: 5 sent, 0 failed, 5.0/s (completed)")
