"""A Jepsen-style checker: the queue's ledger against what the Gmail emulator actually holds.

Per RFC Message-ID: *lost* = the ledger says sent but the mailbox has no copy; *duplicated* = more
than one copy; *unexpected* = a copy of a Message-ID the ledger does not hold as sent (unknown, or
recorded as failed/unconfirmed); *stuck* = not in a terminal state; *unexplained* = failed or
unconfirmed without a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TERMINAL = frozenset({"sent", "failed", "cancelled", "unconfirmed"})


@dataclass(frozen=True)
class Row:
    rfc_message_id: str
    state: str
    gmail_id: str | None
    outcome_reason: str | None


@dataclass
class Verdict:
    total: int = 0
    sent: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.stuck or self.unexplained)

    def summary(self) -> str:
        return (
            f"total={self.total} sent={self.sent} lost={len(self.lost)} duplicated={len(self.duplicated)} "
            f"unexpected={len(self.unexpected)} stuck={len(self.stuck)} unexplained={len(self.unexplained)} "
            f"examples={self.lost[:3]} {list(self.duplicated.items())[:3]} {self.unexpected[:3]} "
            f"{self.stuck[:3]} {self.unexplained[:3]}"
        )


def bare(rfc_message_id: str) -> str:
    """A Message-ID without its angle brackets (the mailbox counts them bare)."""
    return rfc_message_id.strip().removeprefix("<").removesuffix(">")


def check(batch: Sequence[Row], everything: Sequence[Row], copies: Mapping[str, int]) -> Verdict:
    """Judge ``batch`` (the run's messages); ``everything`` is the whole ledger, ``copies`` the mailbox."""
    verdict = Verdict(total=len(batch))
    copies = {bare(rfc): n for rfc, n in copies.items()}
    known_sent = {bare(row.rfc_message_id) for row in everything if row.state == "sent"}
    for row in batch:
        delivered = copies.get(bare(row.rfc_message_id), 0)
        if row.state not in TERMINAL:
            verdict.stuck.append(row.rfc_message_id)
        elif row.state == "sent":
            verdict.sent += 1
            if delivered == 0 or row.gmail_id is None:
                verdict.lost.append(row.rfc_message_id)
        elif row.state in {"failed", "unconfirmed"} and not row.outcome_reason:
            verdict.unexplained.append(row.rfc_message_id)
        if delivered > 1:
            verdict.duplicated[row.rfc_message_id] = delivered
    verdict.unexpected = sorted(rfc for rfc, n in copies.items() if n > 0 and rfc not in known_sent)
    return verdict
