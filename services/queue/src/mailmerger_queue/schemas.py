"""Request and response shapes of the v1 API for emails and senders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from mailmerger_queue.domain import Resolution
from mailmerger_shared.web.deps import MAX_RESOURCE_ID

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
# Ids name bigint rows; a larger one names none (and the driver refuses it): see ResourceId.
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_RESOURCE_ID)]
# RFC 5322 caps a header line at 998 characters.
Subject = Annotated[str, msgspec.Meta(max_length=998)]


class TemplateFill(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Render a template version with one row of fields."""

    template_id: Id
    version: Id
    fields: dict[str, Any] = msgspec.field(default_factory=dict)


class EmailContent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One email: either ``subject`` with ``html`` and/or ``text``, or a ``template`` to render.

    ``send_at`` in the past or absent means now.
    """

    to: list[str]
    cc: list[str] = msgspec.field(default_factory=list)
    bcc: list[str] = msgspec.field(default_factory=list)
    # Where replies go (the Reply-To header), at most ``domain.MAX_REPLY_TO``; empty: to the sender.
    reply_to: list[str] = msgspec.field(default_factory=list)
    subject: Subject | None = None
    html: str | None = None
    text: str | None = None
    template: TemplateFill | None = None
    attachment_ids: list[Id] = msgspec.field(default_factory=list)
    send_at: AwareDatetime | None = None


class ComposeEmail(EmailContent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An email and the user's Gmail account that sends it."""

    account_id: Id


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    dispatched_at: datetime
    outcome: str | None
    outcome_at: datetime | None
    reason: str | None
    detail: str | None


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    from_state: str | None
    to_state: str
    reason: str
    attempt: int


class Email(msgspec.Struct, frozen=True, kw_only=True):
    """A message of the ledger as listed (without bodies and history)."""

    id: int
    # None: queued through the legacy client before any Gmail account was connected; the first
    # account the user connects sends it.
    account_id: int | None
    campaign_id: int | None
    state: str
    send_at: datetime | None
    attempt: int
    rfc_message_id: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str | None
    attachment_ids: list[int]
    gmail_id: str | None
    thread_id: str | None
    sent_at: datetime | None
    outcome_reason: str | None
    outcome_detail: str | None
    created_at: datetime
    updated_at: datetime
    reply_to: list[str] = msgspec.field(default_factory=list)


class EmailDetail(Email, frozen=True, kw_only=True):
    """A message with its bodies and its full history."""

    html: str | None
    text: str | None
    attempts: list[Attempt]
    transitions: list[Transition]


class EmailPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Email]
    next_cursor: str | None


class Sender(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    email: str
    display_name: str | None
    scopes: list[str]
    state: str
    daily_limit: int
    per_minute_limit: int
    sent_last_24h: int
    parked_until: datetime | None
    parked_reason: str | None


class SenderLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """New limits of one account; an absent field keeps its value."""

    daily_limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    # At most MM_DISPATCH_PER_MINUTE_LIMIT, Gmail's per-user quota (``dispatch.senders.update_limits``).
    per_minute_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None


# --- campaigns --------------------------------------------------------------------------------

ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7)]


class ScheduleIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a campaign sends: from ``start_at``, on ``weekdays`` (ISO, Monday = 1) between
    ``window_start`` and ``window_end`` (HH:MM, local to ``timezone``), at most ``daily_cap`` per
    local day and at most ``domain_daily_cap`` of them to one recipient domain, ``spacing_seconds``
    ± ``jitter_seconds`` apart."""

    start_at: AwareDatetime | None = None
    timezone: str = "UTC"
    window_start: ClockTime | None = None
    window_end: ClockTime | None = None
    weekdays: list[Weekday] = msgspec.field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    daily_cap: Annotated[int, msgspec.Meta(ge=1)] | None = None
    domain_daily_cap: Annotated[int, msgspec.Meta(ge=1)] | None = None
    spacing_seconds: Annotated[int, msgspec.Meta(ge=0, le=86_400)] = 0
    jitter_seconds: Annotated[int, msgspec.Meta(ge=0, le=86_400)] = 0


# At most this many follow-ups after a campaign's first email.
MAX_FOLLOW_UPS = 5


class FollowUpStepIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A follow-up: sent ``delay_hours`` after the recipient's previous step was sent (counting only
    the campaign's weekdays, in its time zone, when ``business_days``), within the sending window,
    unless the recipient stopped (replied, bounced, unsubscribed, suppressed, or stopped by you).
    ``same_thread``: a reply in the previous email's Gmail thread ("Re: " and the first subject);
    otherwise a new email with the template's own subject."""

    template_id: Id
    template_version: Id
    delay_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 366)]
    business_days: bool = False
    same_thread: bool = True


class FollowUpStep(FollowUpStepIn, frozen=True, kw_only=True):
    step: int  # 2 for the first follow-up


FollowUps = Annotated[list[FollowUpStepIn], msgspec.Meta(max_length=MAX_FOLLOW_UPS)]


class ReplaceSteps(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every follow-up, in order (step 2 first). A step some recipient's email was already built
    for must be given unchanged; the steps after it may change, be added or be removed."""

    steps: FollowUps


class StopRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``replied``: the recipient answered; ``stopped``: send this recipient nothing more."""

    reason: Literal["replied", "stopped"]


class RowStopped(msgspec.Struct, frozen=True, kw_only=True):
    """The row's stop (the first one stands: stopping again changes nothing) and how many of its
    emails not yet dispatched were cancelled by it."""

    row: int
    stop_reason: str
    stopped_at: datetime
    cancelled: int


class CreateCampaign(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    account_id: Id
    template_id: Id
    template_version: Id
    address_column: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "email"
    attachments_column: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    # Columns holding each row's Cc, Bcc and Reply-To addresses (several in a cell, separated by
    # commas or semicolons); each address is checked like the row's own, and To, Cc and Bcc
    # together may name at most 100 (Gmail's per-message limit through its API).
    cc_column: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    bcc_column: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    reply_to_column: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    attachment_ids: list[Id] = msgspec.field(default_factory=list)
    schedule: ScheduleIn = msgspec.field(default_factory=ScheduleIn)
    # RFC 8058 one-click unsubscribe headers and the {{ unsubscribe_url }} variable (on by default:
    # Gmail requires them of bulk senders).
    list_unsubscribe: bool = True
    # Follow-ups after the first email (step 2 first): a sequence.
    steps: FollowUps = msgspec.field(default_factory=list)
    # Where replies are watched (the account granted a read scope): a reply stops the replier's
    # sequence; with stop_on_domain_reply, a reply also stops every recipient at the replier's
    # domain (not for consumer domains such as gmail.com).
    stop_on_reply: bool = True
    stop_on_domain_reply: bool = False


class Campaign(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    account_id: int
    template_id: int
    template_version: int
    state: str
    address_column: str
    attachments_column: str | None
    attachment_ids: list[int]
    schedule: ScheduleIn
    list_unsubscribe: bool
    created_at: datetime
    launched_at: datetime | None
    finished_at: datetime | None
    # Why a paused campaign paused itself (a run of failures); None when the user paused it.
    paused_reason: str | None = None
    # The follow-ups after the first email, step 2 first.
    steps: list[FollowUpStep] = msgspec.field(default_factory=list)
    stop_on_reply: bool = True
    stop_on_domain_reply: bool = False
    # Whether the sending account lets the mailbox watcher see replies and bounces (a read scope);
    # when not, ``replies_watched_detail`` says so and how to stop a row by hand.
    replies_watched: bool = False
    replies_watched_detail: str | None = None
    cc_column: str | None = None
    bcc_column: str | None = None
    reply_to_column: str | None = None


class RecipientRows(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A recipient list as JSON: one object per recipient, the address under ``address_column``."""

    rows: list[dict[str, Any]]


class BuildSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Rows read, rows ready to send, and rows with each kind of problem."""

    rows: int
    valid: int
    problems: dict[str, int]


class RowProblem(msgspec.Struct, frozen=True, kw_only=True):
    row: int
    address: str
    problem: str
    detail: str | None


class ValidationReport(msgspec.Struct, frozen=True, kw_only=True):
    summary: BuildSummary
    problems: list[RowProblem]
    next_cursor: str | None
    # Sendable rows the suppression list stops (as of now: it is checked again at dispatch).
    suppressed: int = 0
    # What will send, but should be fixed first (a template without a visible unsubscribe link).
    warnings: list[str] = msgspec.field(default_factory=list)
    # Recipients who replied, bounced, auto-replied so far (as in ``Progress``).
    replied: int = 0
    bounced: int = 0
    auto_replied: int = 0


class RowPreview(msgspec.Struct, frozen=True, kw_only=True):
    row: int
    address: str
    fields: dict[str, Any]
    attachment_ids: list[int]
    problem: str | None
    detail: str | None
    subject: str | None
    html: str | None
    text: str | None
    cc: list[str] = msgspec.field(default_factory=list)
    bcc: list[str] = msgspec.field(default_factory=list)
    reply_to: list[str] = msgspec.field(default_factory=list)


class Launch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    skip_invalid: bool = False


class UpdateCampaign(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The settings of a draft to change (at least one); a field left out keeps its value.
    ``schedule`` is replaced whole, checked as at creation."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    schedule: ScheduleIn | msgspec.UnsetType = msgspec.UNSET
    list_unsubscribe: bool | msgspec.UnsetType = msgspec.UNSET
    stop_on_reply: bool | msgspec.UnsetType = msgspec.UNSET
    stop_on_domain_reply: bool | msgspec.UnsetType = msgspec.UNSET
    attachments_column: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType | None
    ) = msgspec.UNSET


class CloneCampaign(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A copy's name (default: ``<name> (copy)``) and whether it gets the list too."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    recipients: bool = False


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Messages per state; ``skipped`` rows had problems and were left out at launch.

    ``sent_per_minute`` is the rate over the last minute (or since sending began, if later).
    ``eta_seconds``/``eta_at``: when the last pending message should go, from that rate held to
    the account's pace, its 24-hour limit, the campaign's daily cap and sending window; None when
    that cannot be told (a draft, a paused campaign, an account to reconnect). ``held_by`` and
    ``held_until`` name the run's first wait, if it has one (``start_at``, ``account_parked``,
    ``window``, ``daily_cap``, ``account_daily_limit``; ``paused``, ``account``), and
    ``eta_detail`` says it in words, e.g. "40 go first; the other 60 wait until Tue 2024-05-07
    09:00 (Europe/Paris), waiting for the sending window".
    """

    campaign_id: int
    state: str
    total: int
    counts: dict[str, int]
    skipped: int
    sent_per_minute: float
    eta_seconds: float | None
    eta_at: datetime | None = None
    held_by: str | None = None
    held_until: datetime | None = None
    eta_detail: str | None = None
    # Recipients whose sequence stopped, per reason (replied, bounced, unsubscribed, stopped,
    # suppressed); messages per step (``{"1": {"sent": 10}, "2": {"scheduled": 10}}``).
    stopped: dict[str, int] = msgspec.field(default_factory=dict)
    steps: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    # Recipients the mailbox watcher found replying, bouncing, auto-replying (one recipient may
    # count in several); only where replies are watched (``replies_watched``).
    replied: int = 0
    bounced: int = 0
    auto_replied: int = 0
    replies_watched: bool = False
    replies_watched_detail: str | None = None


class Retried(msgspec.Struct, frozen=True, kw_only=True):
    retried: int


class Resolve(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``resend_anyway``: send it again, although Gmail may already have delivered it (the recipient
    may then get it twice); ``mark_as_sent``: take it as sent, nothing more is sent."""

    resolution: Resolution


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    """How many unconfirmed messages were settled, and what that means for their recipients."""

    resolution: Resolution
    resolved: int
    note: str
