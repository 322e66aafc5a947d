"""Injected faults: Gmail API calls that fail, slow down, or lose their answer.

A rule applies to the calls of one user (or all users) and some Gmail methods (or all), and fires
for the next ``count`` matching calls, with probability ``rate`` per call, or - with neither - on
every matching call until the faults are cleared. For one call, every firing latency rule adds its
delay, and the first firing error rule and the first firing drop rule apply; later rules of the
same kind are not consulted, so their ``count`` is not spent.

Kinds:
- ``error``: answer the call with Google's error body for ``status``/``reason``, or with one of
  the shapes seen in the wild (``shape``, GMAIL_FACTS.md 2.5b): ``resource_exhausted`` (429
  ``RESOURCE_EXHAUSTED``), ``quota_metric`` (403 "Quota exceeded for quota metric 'Queries'…"),
  ``mail_sending`` and ``retry_after`` (429 "Retry after <now + retry_after_seconds>" with and
  without "(Mail sending)"), ``unauthenticated`` (401 with ``status``), ``scope_insufficient``
  (403 with ``details[].reason = ACCESS_TOKEN_SCOPE_INSUFFICIENT``);
- ``latency``: answer ``latency_ms`` later;
- ``drop_connection``: carry the call out (a send IS stored), then close the connection
  without an answer, the "timeout after the request was sent" case the sender must reconcile.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from mailmerger_emulator.google.errors import (
    GoogleApiError,
    injected_error,
    insufficient_scopes,
    quota_metric_exceeded,
    resource_exhausted,
    retry_after_limit,
    unauthenticated,
)

GmailMethod = Literal[
    "messages.send",
    "messages.list",
    "messages.get",
    "messages.attachments.get",
    "threads.get",
    "history.list",
    "labels.list",
    "getProfile",
]
ErrorShape = Literal[
    "resource_exhausted",
    "quota_metric",
    "mail_sending",
    "retry_after",
    "unauthenticated",
    "scope_insufficient",
]


class FaultKind(StrEnum):
    ERROR = "error"
    LATENCY = "latency"
    DROP_CONNECTION = "drop_connection"


class FaultRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: FaultKind
    user: str | None = None
    methods: list[GmailMethod] | None = None
    rate: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    count: Annotated[int, msgspec.Meta(gt=0)] | None = None
    status: Annotated[int, msgspec.Meta(ge=400, le=599)] = 500
    reason: str = "backendError"
    message: str | None = None
    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] = 0
    shape: ErrorShape | None = None
    retry_after_seconds: Annotated[int, msgspec.Meta(ge=0)] = 3600

    def __post_init__(self) -> None:
        if self.rate is not None and self.count is not None:
            raise ValueError("give either rate or count, not both")
        if self.kind is FaultKind.LATENCY and self.latency_ms == 0:
            raise ValueError("a latency fault needs latency_ms > 0")


@dataclass(kw_only=True)
class ActiveFault:
    id: int
    rule: FaultRule
    remaining: int | None

    def matches(self, user: str, method: str) -> bool:
        rule = self.rule
        return (rule.user is None or rule.user.lower() == user) and (
            rule.methods is None or method in rule.methods
        )


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    latency_ms: int = 0
    error: GoogleApiError | None = None
    drop_connection: bool = False


NO_FAULT = FaultOutcome()


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[ActiveFault] = []
        self._ids = itertools.count(1)
        self._random = random.SystemRandom()

    def add(self, rule: FaultRule) -> ActiveFault:
        fault = ActiveFault(id=next(self._ids), rule=rule, remaining=rule.count)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[ActiveFault]:
        return list(self._faults)

    def draw(self, user: str, method: str, now: float = 0.0) -> FaultOutcome:
        """Decide what goes wrong with this call, spending the counts of the rules that fire."""
        if not self._faults:
            return NO_FAULT
        latency = 0
        error: GoogleApiError | None = None
        drop = False
        for fault in list(self._faults):
            kind = fault.rule.kind
            already_decided = (kind is FaultKind.ERROR and error is not None) or (
                kind is FaultKind.DROP_CONNECTION and drop
            )
            if already_decided or not fault.matches(user, method) or not self._fires(fault):
                continue
            if kind is FaultKind.LATENCY:
                latency += fault.rule.latency_ms
            elif kind is FaultKind.ERROR:
                error = _error(fault.rule, now)
            else:
                drop = True
        return FaultOutcome(latency_ms=latency, error=error, drop_connection=drop)

    def _fires(self, fault: ActiveFault) -> bool:
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.remove(fault)
            return True
        rate = fault.rule.rate
        return rate is None or self._random.random() < rate


def _error(rule: FaultRule, now: float) -> GoogleApiError:
    if rule.shape is None:
        return injected_error(rule.status, rule.reason, rule.message)
    if rule.shape == "resource_exhausted":
        return resource_exhausted()
    if rule.shape == "quota_metric":
        return quota_metric_exceeded()
    if rule.shape == "unauthenticated":
        return unauthenticated()
    if rule.shape == "scope_insufficient":
        return insufficient_scopes()
    return retry_after_limit(now + rule.retry_after_seconds, mail_sending=rule.shape == "mail_sending")
