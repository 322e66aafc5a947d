"""Configuration mistakes are reported whole: every offending variable of every service at once,
and a misspelled variable by name with the setting it was probably meant to be."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailmerger import cli


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A directory without a .env, so only the variables the test sets are read."""
    monkeypatch.chdir(tmp_path)


def test_run_reports_every_offending_variable_of_every_service_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad variables of the all-in-one, HTTP, auth, the queue and the logs: one message names them all."""
    bad = {
        "MM_RUN_INTERNAL_PORT": "z",
        "MM_HTTP_PORT": "abc",
        "MM_AUTH_ARGON2_TIME_COST": "1",
        "MM_DISPATCH_TICK_SECONDS": "soon",
        "MM_LOG_JSON": "maybe",
    }
    for variable, value in bad.items():
        monkeypatch.setenv(variable, value)
    assert cli.main(["run"]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]
    assert sorted(line.split("=", 1)[0].removeprefix("  - ") for line in problems) == sorted(bad)


def test_a_misspelled_variable_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MM_HTTP_PROT is not silently ignored: a warning names it and suggests MM_HTTP_PORT."""
    monkeypatch.setenv("MM_HTTP_PROT", "9090")
    monkeypatch.setenv("MM_LOG_JSON", "maybe")  # stops start-up right after the warning
    assert cli.main(["run"]) == 2
    assert "MM_HTTP_PROT is not a MailMerger setting and is ignored; did you mean MM_HTTP_PORT?" in (
        capsys.readouterr().err
    )
