"""JSON logs: one object per line, carrying the correlation id of the work at hand."""

from __future__ import annotations

import json
import logging

from mailmerger_shared.context import accept_or_new_id, set_correlation_id
from mailmerger_shared.logs import JsonFormatter


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("mailmerger.test", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_log_line_is_json_with_service_level_and_extras() -> None:
    """A record becomes one JSON object with level, service, message and extra fields."""
    line = JsonFormatter("queue").format(_record("dispatched", message_id=42))
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["service"] == "queue"
    assert entry["msg"] == "dispatched"
    assert entry["message_id"] == 42


def test_log_line_carries_the_correlation_id() -> None:
    """The correlation id set for the current request or message appears on every line."""
    set_correlation_id("req-7")
    try:
        entry = json.loads(JsonFormatter("auth").format(_record("hello")))
    finally:
        set_correlation_id(None)
    assert entry["correlation_id"] == "req-7"


def test_client_ids_are_kept_only_when_safe() -> None:
    """A short id of safe characters is kept; anything else is replaced by a fresh one."""
    assert accept_or_new_id("abc-123.x:y_z") == "abc-123.x:y_z"
    assert accept_or_new_id("a" * 200) != "a" * 200
    assert accept_or_new_id("evil\nline") != "evil\nline"
    assert len(accept_or_new_id(None)) == 32
