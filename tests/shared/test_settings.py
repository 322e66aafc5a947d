"""Settings: typed, frozen, and one clear error naming every bad variable."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from mailmerger_shared.settings import (
    DatabaseSettings,
    HttpSettings,
    QueueCredential,
    SettingsError,
    load,
    load_all,
)


def test_defaults_apply_when_variables_are_absent() -> None:
    """A group with defaults loads from an empty environment."""
    assert load(DatabaseSettings, {}).pool_size == 10


def test_values_are_converted_to_their_types() -> None:
    """Text from the environment becomes ints, bools and lists."""
    http = load(
        HttpSettings,
        {"MM_HTTP_PORT": "9000", "MM_HTTP_DEBUG": "true", "MM_HTTP_CORS_ORIGINS": "http://a, http://b"},
    )
    assert (http.port, http.debug, http.cors_origins) == (9000, True, ["http://a", "http://b"])


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after loading."""
    with pytest.raises(AttributeError):
        load(DatabaseSettings, {}).pool_size = 3  # type: ignore[misc]


def test_every_missing_and_malformed_variable_is_named_at_once() -> None:
    """One error lists all problems across groups, each with its variable name."""
    with pytest.raises(SettingsError) as caught:
        load_all(
            DatabaseSettings,
            QueueCredential,
            HttpSettings,
            env={"MM_DB_POOL_SIZE": "ten", "MM_HTTP_PORT": "80a"},
        )
    message = str(caught.value)
    assert "MM_DB_POOL_SIZE='ten' is malformed" in message
    assert "MM_INTERNAL_QUEUE_TOKEN is required" in message
    assert "MM_HTTP_PORT='80a' is malformed" in message
    assert len(caught.value.problems) == 3


def test_env_file_is_read_and_the_environment_wins(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A .env file supplies defaults for development; real variables override it."""
    from mailmerger_shared.settings import environment

    env_file = tmp_path / ".env"
    env_file.write_text("MM_HTTP_PORT=9100\nMM_HTTP_HOST=0.0.0.0\n")
    monkeypatch.setenv("MM_HTTP_PORT", "9200")
    http = load(HttpSettings, environment(env_file))
    assert (http.host, http.port) == ("0.0.0.0", 9200)


@pytest.mark.slow  # a process of its own
def test_bad_configuration_stops_start_up_with_a_message_not_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`mailmerger serve` with a malformed variable exits 2 naming it, without a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "mailmerger.cli", "serve", "templates"],
        env={"MM_DB_POOL_SIZE": "many", "MM_HTTP_PORT": "http", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MM_DB_POOL_SIZE='many' is malformed" in result.stderr
    assert "MM_HTTP_PORT='http' is malformed" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_structs_reject_unknown_shapes() -> None:
    """A JSON value of the wrong shape is reported, not silently accepted."""
    with pytest.raises(SettingsError, match="MM_HTTP_CORS_ORIGINS"):
        load(HttpSettings, {"MM_HTTP_CORS_ORIGINS": '{"not": "a list"}'})
    assert msgspec.structs.fields(HttpSettings)
