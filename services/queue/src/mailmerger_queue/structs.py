"""Rows of the queue's tables as the structs the service hands out, each mapping written once.

The columns a struct is read from are listed next to the function that builds it, so a query and
its mapping change together: ``EMAIL`` for :func:`email`, ``COMMAND`` for :func:`send_email`.
A campaign message's rendered content lives in its recipient row (see ``models``), so both read
``messages`` joined to ``recipients`` (:func:`with_content`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import FromClause, func, select

from mailmerger_queue import schemas
from mailmerger_queue.compliance.tokens import Row
from mailmerger_queue.dispatch.pacing import Schedule
from mailmerger_queue.domain import CampaignState
from mailmerger_queue.models import Record, campaigns, messages, recipients
from mailmerger_queue.sequences.domain import replies_unwatched
from mailmerger_shared import contracts as c

m, r, cp = messages, recipients, campaigns

SUBJECT = func.coalesce(m.c.subject, r.c.subject).label("subject")
HTML = func.coalesce(m.c.html, r.c.html).label("html")
TEXT = func.coalesce(m.c.text, r.c.text).label("text")


def with_content() -> FromClause:
    """``messages`` with the recipient row that holds a campaign message's content."""
    return m.outerjoin(r, r.c.id == m.c.recipient_id)


# --- emails -----------------------------------------------------------------------------------

EMAIL: list[Any] = [
    m.c.id,
    m.c.account_id,
    m.c.campaign_id,
    m.c.state,
    m.c.send_at,
    m.c.attempt,
    m.c.rfc_message_id,
    m.c.to_addrs,
    m.c.cc_addrs,
    m.c.bcc_addrs,
    m.c.reply_to_addrs,
    SUBJECT,
    m.c.attachment_ids,
    m.c.gmail_id,
    m.c.thread_id,
    m.c.sent_at,
    m.c.outcome_reason,
    m.c.outcome_detail,
    m.c.created_at,
    m.c.updated_at,
]
EMAIL_DETAIL: list[Any] = [*EMAIL, HTML, TEXT]


def email(row: Record) -> schemas.Email:
    """A row of ``EMAIL``."""
    return schemas.Email(**_email_fields(row))


def email_detail(row: Record, history: Iterable[Record], moves: Iterable[Record]) -> schemas.EmailDetail:
    """A row of ``EMAIL_DETAIL``, with its ``attempts`` rows and ``transitions`` rows in order."""
    return schemas.EmailDetail(
        **_email_fields(row),
        html=row.html,
        text=row.text,
        attempts=[attempt(a) for a in history],
        transitions=[transition(t) for t in moves],
    )


def _email_fields(row: Record) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "campaign_id": row.campaign_id,
        "state": row.state,
        "send_at": row.send_at,
        "attempt": row.attempt,
        "rfc_message_id": row.rfc_message_id,
        "to": list(row.to_addrs),
        "cc": list(row.cc_addrs),
        "bcc": list(row.bcc_addrs),
        "reply_to": list(row.reply_to_addrs),
        "subject": row.subject,
        "attachment_ids": list(row.attachment_ids),
        "gmail_id": row.gmail_id,
        "thread_id": row.thread_id,
        "sent_at": row.sent_at,
        "outcome_reason": row.outcome_reason,
        "outcome_detail": row.outcome_detail,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def attempt(row: Record) -> schemas.Attempt:
    """A row of ``attempts``."""
    return schemas.Attempt(
        attempt=row.attempt,
        dispatched_at=row.dispatched_at,
        outcome=row.outcome,
        outcome_at=row.outcome_at,
        reason=row.reason,
        detail=row.detail,
    )


def transition(row: Record) -> schemas.Transition:
    """A row of ``transitions``."""
    return schemas.Transition(
        at=row.at, from_state=row.from_state, to_state=row.to_state, reason=row.reason, attempt=row.attempt
    )


# --- the dispatcher's commands ----------------------------------------------------------------

COMMAND: list[Any] = [
    m.c.id,
    m.c.user_id,
    m.c.account_id,
    m.c.campaign_id,
    m.c.attempt,
    m.c.generation,
    m.c.rfc_message_id,
    m.c.to_addrs,
    m.c.cc_addrs,
    m.c.bcc_addrs,
    m.c.reply_to_addrs,
    SUBJECT,
    HTML,
    TEXT,
    m.c.attachment_ids,
    m.c.correlation_id,
    r.c.row_number,
    # A follow-up's place in its recipient's sequence and thread (``sequences``); the recipient's
    # stop, if any: the dispatcher cancels a stopped recipient's message.
    m.c.recipient_id,
    m.c.step,
    m.c.thread_id,
    m.c.in_reply_to,
    m.c.reference_ids,
    r.c.stop_reason,
    # Whether the campaign's mail carries one-click unsubscribe headers (NULL: not a campaign's).
    select(cp.c.list_unsubscribe)
    .where(cp.c.id == m.c.campaign_id)
    .scalar_subquery()
    .label("list_unsubscribe"),
]


def unsubscribe_row(row: Record) -> Row | None:
    """The campaign row a ``COMMAND`` row's unsubscribe link names, when its mail carries one."""
    if row.campaign_id is None or not row.list_unsubscribe or row.row_number is None:
        return None
    return Row(row.campaign_id, row.row_number)


def send_email(
    row: Record,
    account: Record,
    refs: dict[int, c.AttachmentRef],
    *,
    attempt: int,
    unsubscribe_url: str | None,
) -> c.SendEmail:
    """A row of ``COMMAND``, sent from the ``senders`` row ``account``; ``refs`` holds (at least)
    its attachments (:func:`attachment_ref`); ``unsubscribe_url`` is the link of
    :func:`unsubscribe_row`, if any."""
    return c.SendEmail(
        message_id=row.id,
        user_id=row.user_id,
        account_id=row.account_id,
        from_address=account.email,
        from_name=account.display_name,
        to=list(row.to_addrs),
        cc=list(row.cc_addrs),
        bcc=list(row.bcc_addrs),
        reply_to=list(row.reply_to_addrs),
        subject=row.subject,
        html=row.html,
        text=row.text,
        attachments=[refs[i] for i in row.attachment_ids],  # remembered when composed
        rfc_message_id=row.rfc_message_id,
        attempt=attempt,
        generation=row.generation,
        unsubscribe_url=unsubscribe_url,
        thread_id=row.thread_id,
        in_reply_to=row.in_reply_to,
        references=list(row.reference_ids or ()),
    )


def attachment_ref(row: Record) -> c.AttachmentRef:
    """A row of ``attachments``."""
    return c.AttachmentRef(
        attachment_id=row.attachment_id,
        object_key=row.object_key,
        sha256=row.sha256,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
    )


# --- campaigns --------------------------------------------------------------------------------


def campaign(
    row: Record, steps: Iterable[schemas.FollowUpStep] = (), scopes: Iterable[str] | None = None
) -> schemas.Campaign:
    """A row of ``campaigns``, with its follow-ups (``sequences.steps``) and whether its replies
    are watched (``scopes``: its sending account's)."""
    unwatched = replies_unwatched(scopes, row.id)
    return schemas.Campaign(
        id=row.id,
        name=row.name,
        account_id=row.account_id,
        template_id=row.template_id,
        template_version=row.template_version,
        state=row.state,
        address_column=row.address_column,
        attachments_column=row.attachments_column,
        cc_column=row.cc_column,
        bcc_column=row.bcc_column,
        reply_to_column=row.reply_to_column,
        attachment_ids=list(row.attachment_ids),
        schedule=schedule_in(row),
        list_unsubscribe=row.list_unsubscribe,
        created_at=row.created_at,
        launched_at=row.launched_at,
        finished_at=row.finished_at,
        paused_reason=row.paused_reason if row.state == CampaignState.PAUSED else None,
        steps=list(steps),
        stop_on_reply=row.stop_on_reply,
        stop_on_domain_reply=row.stop_on_domain_reply,
        replies_watched=unwatched is None,
        replies_watched_detail=unwatched,
    )


def schedule_in(row: Record) -> schemas.ScheduleIn:
    """The schedule of a row of ``campaigns``, as the user gave it."""
    return schemas.ScheduleIn(
        start_at=row.start_at,
        timezone=row.timezone,
        window_start=row.window_start.strftime("%H:%M") if row.window_start else None,
        window_end=row.window_end.strftime("%H:%M") if row.window_end else None,
        weekdays=list(row.weekdays),
        daily_cap=row.daily_cap,
        domain_daily_cap=row.domain_daily_cap,
        spacing_seconds=row.spacing_seconds,
        jitter_seconds=row.jitter_seconds,
    )


def schedule(row: Record) -> Schedule:
    """The schedule of a row of ``campaigns``, as pacing applies it."""
    return Schedule(
        timezone=row.timezone,
        window_start=row.window_start,
        window_end=row.window_end,
        weekdays=tuple(row.weekdays),
        daily_cap=row.daily_cap,
        spacing_seconds=row.spacing_seconds,
        jitter_seconds=row.jitter_seconds,
    )


def row_problem(row: Record) -> schemas.RowProblem:
    """A row of ``recipients`` that has a problem."""
    return schemas.RowProblem(row=row.row_number, address=row.address, problem=row.problem, detail=row.detail)


def row_preview(row: Record) -> schemas.RowPreview:
    """A row of ``recipients``."""
    return schemas.RowPreview(
        row=row.row_number,
        address=row.address,
        fields=row.fields,
        attachment_ids=list(row.attachment_ids),
        problem=row.problem,
        detail=row.detail,
        subject=row.subject,
        html=row.html,
        text=row.text,
        cc=list(row.cc_addrs),
        bcc=list(row.bcc_addrs),
        reply_to=list(row.reply_to_addrs),
    )
