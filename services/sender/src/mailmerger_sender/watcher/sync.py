"""One pass over one leased mailbox: find what arrived in our threads, stage it, move on.

- No read scope (``reconcile.read_access`` is NONE) → state ``send_only``, no Gmail call; the
  scopes are asked again after ``scope_recheck_seconds``.
- No stored ``history_id``, or Gmail answers 404 for it → **full sync**: ``getProfile`` first (its
  ``historyId`` is stored at the end, so nothing that arrives during the sync is missed), then
  ``messages.list labelIds=INBOX`` (never ``q``: the metadata scope forbids it) for at most
  ``full_sync_pages`` pages, ``messages.get format=metadata`` for those in our threads, newest
  first, as many as the budget pays for. A full sync is a window, not a replay: older pages are
  not read, and candidates of ours the budget did not cover are logged (with the account) as a gap.
- Otherwise **incremental**: ``history.list`` from the stored id, page after page, each page's
  answers staged in the transaction that stores the id of the last history record processed.
  When the budget runs out the pass stops after a whole record, and the next pass continues there.

Invariants:
- An event is staged in the transaction that advances ``history_id`` past its message, and that
  transaction checks the lease: a crash (or a lost lease) before the commit loses nothing, the
  next pass finds the message again. A pass redone may stage one message twice; the queue dedupes
  by (account_id, gmail_id).
- ``message_id`` of a response is our newest sent message of the thread sent before the response
  arrived (with ``CLOCK_SKEW``): a follow-up sent later does not take over an earlier reply. A
  message that arrived before any of ours in the thread is not a response to us.
- Gmail's refusals and transport failures never escape a pass: they end it with the mailbox's
  state and next poll time set (``release``); a lost lease leaves the row to its new holder. Any
  other failure (the database) leaves the lease to run out, and the run loop logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text

from mailmerger_sender.adapters.gmail import AnswerLost, RequestNotSent
from mailmerger_sender.adapters.tokens import AccountUnknown, ReconnectRequired, TokenUnavailable
from mailmerger_sender.models import outbox
from mailmerger_sender.reconcile import ReadAccess, read_access
from mailmerger_sender.settings import WatcherSettings
from mailmerger_sender.watcher import mailboxes, readback
from mailmerger_sender.watcher.mailboxes import LeaseLost, MailboxLease
from mailmerger_sender.watcher.ports import WatcherPorts
from mailmerger_sender.watcher.reading import (
    RESPONSE_HEADERS,
    Budget,
    HistoryPage,
    MessageList,
    MessageRef,
    Refusal,
    decode,
    history_id,
    incoming,
    profile_history_id,
)
from mailmerger_sender.watcher.responses import OurMessage, announce, answer_events
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from mailmerger_shared.internal_api import GmailAccessToken
from mailmerger_shared.outbox import stage

log = logging.getLogger(__name__)

# A pass cut short by its budget goes on this soon (or at the poll interval, if sooner): at most
# ``units_per_pass`` a minute per mailbox, far below Gmail's per-user minute.
BACKLOG_PAUSE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=6)
_SENT_OR_DRAFT = frozenset({"SENT", "DRAFT"})


@dataclass(slots=True)
class PassReport:
    """What one pass did (for logs and tests)."""

    account_id: int
    outcome: str = "synced"  # synced, backlog, send_only, unauthorized, throttled, error, lease_lost
    full_sync: bool = False
    units: int = 0
    responses: list[c.Event] = field(default_factory=list)
    read_back: int = 0


class _Pass:
    def __init__(self, ports: WatcherPorts, held: MailboxLease, token: GmailAccessToken) -> None:
        self.ports = ports
        self.held = held
        self.token = token
        self.settings = ports.settings
        self.budget = Budget(ports.settings)
        self.report = PassReport(held.account_id)
        self.backlog = False

    # --- the two ways of reading ------------------------------------------------------------

    async def full_sync(self) -> None:
        self.report.full_sync = True
        gmail, token, now = self.ports.gmail, self.token.access_token, self.ports.clock()
        self.budget.spend("getProfile")
        start = profile_history_id(await gmail.get_profile(token), now)
        candidates: list[MessageRef] = []
        ours: dict[str, list[OurMessage]] = {}
        page_token: str | None = None
        for _ in range(self.settings.full_sync_pages):
            if not self.budget.affords("messages.list"):
                break
            self.budget.spend("messages.list")
            answer = await gmail.list_messages(token, label="INBOX", page_token=page_token)
            page = decode(answer, MessageList, self.ports.clock())
            ours.update(await self._threads({ref.threadId for ref in page.messages} - ours.keys()))
            candidates += [ref for ref in page.messages if ref.threadId in ours]
            if page.nextPageToken is None:
                break
            page_token = page.nextPageToken
        events: list[c.Event] = []
        skipped = 0
        for ref in candidates:  # newest first: what a short budget leaves out is the oldest
            if not self.budget.affords("messages.get"):
                skipped += 1
                continue
            events += await self._answer_of(ref, ours)
        if skipped:
            log.warning(
                "full sync of account %s left %s older messages of its threads unread (budget spent)",
                self.held.account_id,
                skipped,
                extra={"account_id": self.held.account_id},
            )
        await self._commit(events, start)

    async def incremental(self, start: int) -> None:
        """``history.list`` from ``start``; raises ``Refusal('not_found')`` when Gmail forgot it."""
        gmail, token = self.ports.gmail, self.token.access_token
        cursor, page_token, progressed = start, None, False
        while True:
            if not self.budget.affords("history.list") and progressed:
                self.backlog = True
                return
            self.budget.spend("history.list")
            answer = await gmail.list_history(token, start, label="INBOX", page_token=page_token)
            page = decode(answer, HistoryPage, self.ports.clock())
            wanted = {ref.threadId for record in page.history for ref in record.added() if _received(ref)}
            ours = await self._threads(wanted)
            events: list[c.Event] = []
            stopped = False
            for record in page.history:
                refs = [ref for ref in record.added() if _received(ref) and ref.threadId in ours]
                if not self.budget.affords("messages.get", len(refs)) and progressed:
                    stopped = True
                    break
                for ref in refs:
                    events += await self._answer_of(ref, ours)
                cursor = max(cursor, history_id(record.id))
                progressed = True
            if stopped:
                self.backlog = True
                await self._commit(events, cursor)
                return
            if page.nextPageToken is None:
                await self._commit(events, max(cursor, history_id(page.historyId)))
                return
            await self._commit(events, cursor)
            page_token = page.nextPageToken

    # --- one message ------------------------------------------------------------------------

    async def _answer_of(self, ref: MessageRef, ours: dict[str, list[OurMessage]]) -> list[c.Event]:
        self.budget.spend("messages.get")
        answer = await self.ports.gmail.get_metadata_headers(
            self.token.access_token, ref.id, RESPONSE_HEADERS
        )
        if answer.status == 404:
            return []  # deleted since it arrived
        message = incoming(answer, self.ports.clock())
        return answer_events(
            message,
            self.token.email,
            ours.get(message.thread_id, ours.get(ref.threadId, [])),
            account_id=self.held.account_id,
            now=self.ports.clock(),
            settings=self.settings,
        )

    async def _threads(self, thread_ids: Iterable[str]) -> dict[str, list[OurMessage]]:
        """Our sent messages in these threads, oldest first, by thread."""
        wanted = sorted(set(thread_ids))
        if not wanted:
            return {}
        async with transaction(self.ports.sessions) as session:
            rows = await session.execute(
                text(
                    "SELECT thread_id, message_id, sent_at FROM sender.deliveries"
                    " WHERE account_id = :account_id AND state = 'sent' AND thread_id = ANY(:threads)"
                    " ORDER BY sent_at, message_id"
                ),
                {"account_id": self.held.account_id, "threads": wanted},
            )
            found: dict[str, list[OurMessage]] = {}
            for row in rows:
                found.setdefault(row.thread_id, []).append(OurMessage(row.message_id, row.sent_at))
        return found

    async def _commit(self, events: list[c.Event], next_history_id: int) -> None:
        """Stage ``events`` and store ``next_history_id`` in one transaction (checking the lease)."""
        async with transaction(self.ports.sessions) as session:
            for event in events:
                await stage(session, outbox, event)
            await mailboxes.advance(
                session,
                self.held,
                history_id=next_history_id,
                now=self.ports.clock(),
                lease_seconds=self.settings.lease_seconds,
            )
        self.found(events)

    def found(self, events: list[c.Event]) -> None:
        """Count, log and announce what a committed transaction staged."""
        if events:
            self.report.responses += events
            self.ports.wake_relay()
            announce(events)


def _received(ref: MessageRef) -> bool:
    """A message added to the INBOX that we did not write (history lists labels as they were)."""
    labels = set(ref.labelIds)
    if not labels:
        return True  # Gmail left the labels out: the metadata read decides
    return "INBOX" in labels and not labels & _SENT_OR_DRAFT


async def sync_mailbox(held: MailboxLease, ports: WatcherPorts) -> PassReport:
    """One pass over ``held``'s mailbox; raises only for what is not Gmail's doing (the database)."""
    settings, now = ports.settings, ports.clock()
    report = PassReport(held.account_id)
    token: GmailAccessToken | None = None
    try:
        try:
            token = await ports.tokens.get(held.account_id)
        except (ReconnectRequired, AccountUnknown) as exc:
            recheck = now + timedelta(seconds=settings.scope_recheck_seconds)
            return await _end(ports, held, report, "error", recheck, f"{type(exc).__name__}: {exc}")
        except TokenUnavailable as exc:
            return await _end(ports, held, report, "error", _backoff(held, now, settings), str(exc))
        if read_access(token.scopes) is ReadAccess.NONE:
            recheck = now + timedelta(seconds=settings.scope_recheck_seconds)
            report.outcome = "send_only"
            return await _end(ports, held, report, "send_only", recheck, None)
        run = _Pass(ports, held, token)
        report = run.report
        try:
            try:
                if held.history_id is None:
                    await run.full_sync()
                else:
                    await run.incremental(held.history_id)
            except Refusal as refusal:
                if refusal.kind != "not_found" or run.report.full_sync:
                    raise
                log.info("history of account %s expired: full sync", held.account_id)
                await run.full_sync()
            if settings.readback and not run.backlog:
                report.read_back = await readback.read_back(
                    ports, held, token, run.budget, on_staged=run.found
                )
        finally:
            report.units = run.budget.spent
        report.outcome = "backlog" if run.backlog else "synced"
        pause = min(timedelta(seconds=settings.poll_seconds), BACKLOG_PAUSE) if run.backlog else None
        next_poll = ports.clock() + (pause or timedelta(seconds=settings.poll_seconds))
        return await _end(ports, held, report, "watching", next_poll, None)
    except Refusal as refusal:
        if refusal.kind == "unauthorized" and token is not None:
            ports.tokens.invalidate(held.account_id, token.access_token)
        return await _refused(ports, held, report, refusal)
    except (RequestNotSent, AnswerLost) as exc:
        report.outcome = "error"
        detail = f"Gmail unreachable: {exc}"
        return await _end(ports, held, report, "error", _backoff(held, ports.clock(), settings), detail)
    except LeaseLost:
        log.warning("mailbox %s was taken over mid-pass; its writes were undone", held.account_id)
        report.outcome = "lease_lost"
        return report


async def _refused(
    ports: WatcherPorts, held: MailboxLease, report: PassReport, refusal: Refusal
) -> PassReport:
    settings, now = ports.settings, ports.clock()
    report.outcome = refusal.kind
    if refusal.kind == "unauthorized":  # the token was dropped: the next pass fetches another
        next_poll = now + timedelta(seconds=min(settings.poll_seconds, 60))
        return await _end(ports, held, report, held.state, next_poll, refusal.detail, keep_failures=True)
    if refusal.kind == "no_scope":
        recheck = now + timedelta(seconds=settings.scope_recheck_seconds)
        return await _end(ports, held, report, "send_only", recheck, refusal.detail)
    if refusal.kind == "throttled":
        until = max(refusal.not_before or now, now + timedelta(seconds=settings.poll_seconds))
        return await _end(ports, held, report, held.state, until, refusal.detail, keep_failures=True)
    log.warning("mailbox pass of account %s failed: %s", held.account_id, refusal.detail)
    return await _end(ports, held, report, "error", _backoff(held, now, settings), refusal.detail)


def _backoff(held: MailboxLease, now: datetime, settings: WatcherSettings) -> datetime:
    seconds = settings.poll_seconds * 2 ** min(held.failures, 16)
    return now + min(timedelta(seconds=seconds), MAX_BACKOFF)


async def _end(
    ports: WatcherPorts,
    held: MailboxLease,
    report: PassReport,
    state: str,
    next_poll_at: datetime,
    last_error: str | None,
    *,
    keep_failures: bool = False,
) -> PassReport:
    failures = 0 if state in ("watching", "send_only") else held.failures + 1
    if keep_failures:
        failures = held.failures
    if state == "error" and report.outcome == "synced":
        report.outcome = "error"
    try:
        async with transaction(ports.sessions) as session:
            await mailboxes.release(
                session,
                held,
                state=state,
                next_poll_at=next_poll_at,
                last_error=last_error[:2000] if last_error else None,
                failures=failures,
            )
    except LeaseLost:
        report.outcome = "lease_lost"
    return report
