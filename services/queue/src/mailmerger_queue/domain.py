"""States of a message and a campaign, which transitions are allowed, and input rules. No I/O.

A message moves ``scheduled → dispatched → sent | failed | unconfirmed``; a deferral moves it from
``dispatched`` back to ``scheduled`` with a later ``send_at``; ``cancelled`` is reachable only
before a dispatch (or to dismiss a failed/unconfirmed one). A failed or unconfirmed message the
user sends again goes back to ``scheduled`` as a new generation (``lifecycle``); an unconfirmed one
the user marks as sent becomes ``sent``. ``sent`` is final: Gmail has the mail, so no later event
may move it. Every move is recorded as a transition.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from mailmerger_queue.errors import Invalid
from mailmerger_shared.header_text import header_text_problem


class State(StrEnum):
    SCHEDULED = "scheduled"
    DISPATCHED = "dispatched"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCONFIRMED = "unconfirmed"


class Resolution(StrEnum):
    """What the user decides for an unconfirmed message (Gmail may or may not have sent it)."""

    RESEND_ANYWAY = "resend_anyway"  # send it again, accepting that it may arrive twice
    MARK_AS_SENT = "mark_as_sent"  # take it as sent; nothing more is sent


class CampaignState(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# The states each move starts from. The SQL that performs a move filters on these, so a move
# racing with another (cancel vs dispatch, two consumers of one event) succeeds at most once.
CANCELLABLE = frozenset({State.SCHEDULED, State.FAILED, State.UNCONFIRMED})
SENDABLE_NOW = frozenset({State.SCHEDULED, State.FAILED, State.UNCONFIRMED})
# Sending one of these again is a new generation of the message: the sender's ledger would only
# repeat the outcome of the old one. An unconfirmed message sent again may reach its recipient twice.
RESENDABLE = frozenset({State.FAILED, State.UNCONFIRMED})
# Failed/deferred/unconfirmed outcomes apply to the attempt in flight. ``scheduled`` is included
# for a dispatcher that published and died before marking the message dispatched, ``unconfirmed``
# only when the sweep guessed it (``NO_OUTCOME``): the sender's word, when it comes, is better.
OUTCOME_APPLIES = frozenset({State.DISPATCHED, State.SCHEDULED})
# ``outcome_reason`` of a message the sweep made unconfirmed: no outcome came back for too long.
NO_OUTCOME = "no_outcome"
# ``outcome_reason`` of a campaign message cancelled at dispatch: its recipient is suppressed.
SUPPRESSED = "suppressed"
# ``outcome_reason`` of an unconfirmed message the user marked as sent.
MARKED_SENT = "marked_sent_by_user"
# EmailSent is the truth from Gmail: it applies from every state but ``sent`` itself.
SENT_APPLIES = frozenset(State) - {State.SENT}
# What the legacy client calls "the queue": not sent, and still something the user can act on.
LEGACY_QUEUE = frozenset({State.SCHEDULED, State.FAILED, State.UNCONFIRMED})
# Pending work of a campaign: while any message is in these states it is not complete.
PENDING = frozenset({State.SCHEDULED, State.DISPATCHED})

CAMPAIGN_LAUNCHABLE = frozenset({CampaignState.DRAFT})
CAMPAIGN_PAUSABLE = frozenset({CampaignState.RUNNING})
CAMPAIGN_RESUMABLE = frozenset({CampaignState.PAUSED})
CAMPAIGN_CANCELLABLE = frozenset({CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED})


class SenderState(StrEnum):
    CONNECTED = "connected"
    RECONNECT_REQUIRED = "reconnect_required"
    DISCONNECTED = "disconnected"


# --- input rules ------------------------------------------------------------------------------

_HEADER_BREAKERS = ("\r", "\n", "\x00")


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` cannot be a mail header (a line break, control or Unicode separator in it,
    by the shared header-text rule), or None when it can."""
    problem = header_text_problem(subject)
    if problem is None:
        return None
    return f"{problem}; a subject is one line of text without control characters"


def require_header_safe(field: str, value: str) -> str:
    """``value``, bound for a mail header; 422 naming ``field`` and the character when it holds a
    line break, control or Unicode separator (the sender could never write it)."""
    problem = subject_problem(value)
    if problem is not None:
        raise Invalid(f"{field}: {problem}")
    return value


class InvalidAddress(ValueError):
    """An address that is not a valid addr-spec; the message says why."""


def parse_address(address: str) -> str:
    """The normalized addr-spec of ``address``; raises InvalidAddress saying what is wrong.

    Syntax only (no DNS): deliverability is Gmail's business, and a lookup per row would make a
    100k-row campaign take minutes. Plain ASCII addresses take a fast path that accepts only what
    email-validator accepts, normalized as it would (domain lowercased); anything else goes to
    email-validator itself.
    """
    if any(ch in address for ch in _HEADER_BREAKERS):
        raise InvalidAddress("it contains a line break (CR, LF) or NUL character")
    if "=?" in address:
        # Valid in a local part, but mail programs decode it as an RFC 2047 encoded word.
        raise InvalidAddress("it contains '=?', which mail programs would decode as an encoded word")
    stripped = address.strip()
    plain = _PLAIN_ADDRESS.fullmatch(stripped)
    if plain is not None and len(plain["local"]) <= 64 and len(stripped) <= 254:
        domain = plain["domain"].lower()
        if "--" not in domain and not _special_use(domain):
            return f"{plain['local']}@{domain}"
    try:
        return validate_email(stripped, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+[A-Za-z]{{2,63}})")


def _special_use(domain: str) -> bool:
    return any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES)


# Reply-To addresses one message may name: a few (a shared inbox, a colleague), not a list.
MAX_REPLY_TO = 5


def normalize_address(field: str, address: str) -> str:
    """``parse_address``, answering 422 naming ``field`` when the address is invalid."""
    try:
        return parse_address(address)
    except InvalidAddress as exc:
        raise Invalid(f"{field}: {address!r} is not a valid email address: {exc}") from exc


def normalize_addresses(field: str, addresses: list[str]) -> list[str]:
    return [normalize_address(f"{field}[{index}]", address) for index, address in enumerate(addresses)]


def rfc_message_id(message_id: int, domain: str) -> str:
    """The Message-ID header of a ledger message, fixed at creation and reused by every attempt.

    The random part keeps ids unguessable and unique across databases (a restored backup, a
    second installation) even though ledger ids repeat.
    """
    return f"<mm.{message_id}.{secrets.token_hex(8)}@{domain}>"


def default_daily_limit(email: str, consumer_domains: list[str], consumer: int, workspace: int) -> int:
    """Gmail's rolling-24 h cap for the account: consumer Gmail ≈ 500, Workspace 2,000."""
    domain = email.rsplit("@", 1)[-1].lower()
    return consumer if domain in {d.lower() for d in consumer_domains} else workspace
