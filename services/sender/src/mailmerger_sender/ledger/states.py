"""A delivery's row in the ledger, its states, and the one rule for moving between them.

The ledger's SQL (``statements``) and the table's check constraint (``models``) take their state
lists from here, so the rule is written once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

SENDING = "sending"
AMBIGUOUS = "ambiguous"
SENT = "sent"
FAILED = "failed"
UNCONFIRMED = "unconfirmed"
DEFERRED = "deferred"
ALL = (SENDING, AMBIGUOUS, SENT, FAILED, UNCONFIRMED, DEFERRED)
FINAL = frozenset({SENT, FAILED, UNCONFIRMED})
UNRESOLVED = frozenset({SENDING, AMBIGUOUS})

# The transition rule. A claim moves a row to SENDING: a new row, a row in
# RECLAIMABLE_BY_A_NEWER_COMMAND (another envelope, an attempt and a generation at least as high),
# or a row in RECLAIMABLE_BY_A_NEWER_GENERATION (the user's resend). ``SENT`` is never claimed
# again. An outcome (any state) is written only over a row in SETTLEABLE, by the command that
# holds its claim; an unresolved claim that settled without a trace is taken over from SETTLEABLE.
RECLAIMABLE_BY_A_NEWER_COMMAND = frozenset({DEFERRED})
RECLAIMABLE_BY_A_NEWER_GENERATION = frozenset({FAILED, UNCONFIRMED})
SETTLEABLE = UNRESOLVED


def sql_list(states: frozenset[str]) -> str:
    """``states`` as an SQL list of literals, for the ledger's statements (their text stays fixed)."""
    return "(" + ", ".join(f"'{state}'" for state in sorted(states)) + ")"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One row of ``sender.deliveries`` (see ``models`` for what each state means)."""

    message_id: int
    rfc_message_id: str
    account_id: int
    attempt: int
    command_id: uuid.UUID
    state: str
    claimed_at: datetime
    settles_at: datetime
    gmail_id: str | None
    thread_id: str | None
    sent_at: datetime | None
    reconciled: bool
    reason: str | None
    detail: str | None
    generation: int
    uncertain_since: datetime | None
    # Written by the mailbox watcher only (the Message-ID Gmail stored, and when it was read).
    stored_message_id: str | None = None
    read_back_at: datetime | None = None
