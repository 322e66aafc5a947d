"""``messages.list``: Gmail's search operators that MailMerger relies on, combined with AND.

Supported: ``rfc822msgid:``, ``in:``/``label:`` (``sent``, ``inbox``, ``unread``, ``anywhere``),
``is:unread``/``is:read``, ``from:`` (``from:me`` is the mailbox's owner), ``to:``, ``subject:``
(quoted values allowed) and ``newer_than:``/``older_than:`` with a ``d``, ``h``, ``m`` (months)
or ``y`` unit, measured on the emulator's clock. Anything else is refused with 400 rather than
answered wrongly: a silently ignored term would make a test pass that fails against Gmail.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailmerger_emulator.google.errors import invalid_argument
from mailmerger_emulator.google.mailbox import Mailbox, StoredMessage, rfc_message_id_key

Predicate = Callable[[StoredMessage], bool]
_AGE = re.compile(r"^(\d+)([dhmy])$", re.IGNORECASE)
# Gmail's units for newer_than:/older_than: (m is months, not minutes).
_AGE_SECONDS = {"h": 3600, "d": 86_400, "m": 30 * 86_400, "y": 365 * 86_400}


@dataclass(kw_only=True)
class Query:
    rfc_message_id: str | None = None
    predicates: list[Predicate] = field(default_factory=list)

    def candidates(self, box: Mailbox) -> Iterable[StoredMessage]:
        """Matching messages, newest first (Gmail lists by descending internal date)."""
        if self.rfc_message_id is not None:
            pool: list[StoredMessage] = box.by_rfc_message_id.get(self.rfc_message_id, [])
        else:
            pool = box.messages
        return (message for message in reversed(pool) if all(test(message) for test in self.predicates))


def _label_test(label: str) -> Predicate | None:
    label = label.upper()
    if label in ("ANYWHERE", "ALL"):
        return None
    return lambda message: label in message.label_ids


def _contains(value: str, fields: Callable[[StoredMessage], Iterable[str]]) -> Predicate:
    needle = value.casefold()
    return lambda message: any(needle in text.casefold() for text in fields(message))


def _unread_test(unread: bool) -> Predicate:
    return lambda message: ("UNREAD" in message.label_ids) is unread


def _age_test(operator: str, value: str, now: float) -> Predicate:
    match = _AGE.match(value)
    if match is None:
        raise invalid_argument(f"Invalid {operator}: value {value!r}")
    cutoff_ms = (now - int(match.group(1)) * _AGE_SECONDS[match.group(2).lower()]) * 1000
    if operator == "newer_than":
        return lambda message: message.internal_date_ms > cutoff_ms
    return lambda message: message.internal_date_ms < cutoff_ms


def parse_query(q: str, label_ids: Iterable[str] = (), *, owner: str = "", now: float = 0.0) -> Query:
    query = Query()
    try:
        terms = shlex.split(q)
    except ValueError:
        raise invalid_argument(f"Invalid query: {q}") from None
    for term in terms:
        operator, colon, value = term.partition(":")
        operator = operator.lower()
        if not colon or not value:
            raise invalid_argument(f"The emulator does not support the search term {term!r}")
        if operator == "rfc822msgid":
            query.rfc_message_id = rfc_message_id_key(value)
        elif operator in ("in", "label"):
            test = _label_test(value)
            if test is not None:
                query.predicates.append(test)
        elif operator == "from" and value.lower() == "me":
            query.predicates.append(lambda message: message.envelope.sender.lower() == owner)
        elif operator == "from":
            query.predicates.append(_contains(value, lambda m: (m.envelope.sender,)))
        elif operator == "is" and value.lower() in ("unread", "read"):
            query.predicates.append(_unread_test(value.lower() == "unread"))
        elif operator in ("newer_than", "older_than"):
            query.predicates.append(_age_test(operator, value, now))
        elif operator == "to":
            query.predicates.append(
                _contains(value, lambda m: (*m.envelope.to, *m.envelope.cc, *m.envelope.bcc))
            )
        elif operator == "subject":
            query.predicates.append(_contains(value, lambda m: (m.envelope.subject,)))
        else:
            raise invalid_argument(f"The emulator does not support the search operator {operator}:")
    for label in label_ids:
        test = _label_test(label)
        if test is not None:
            query.predicates.append(test)
    return query
