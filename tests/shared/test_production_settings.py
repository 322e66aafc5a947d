"""MM_ENVIRONMENT: development accepts the published development values; production refuses each
one by its variable, all of them in one start-up error."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from typing import Any

import pytest

from mailmerger.services import registry
from mailmerger_auth.settings import DEV_ENCRYPTION_KEY, AuthSettings
from mailmerger_shared.settings import (
    DEV_GOOGLE_CLIENT_SECRET,
    DEV_QUEUE_TOKEN,
    DEV_SENDER_TOKEN,
    DEV_SYSTEM_MAIL_REFRESH_TOKEN,
    SettingsError,
    load_service,
)

REAL_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
REAL = {
    "MM_INTERNAL_QUEUE_TOKEN": "a-real-queue-secret",
    "MM_INTERNAL_SENDER_TOKEN": "a-real-sender-secret",
    "MM_GOOGLE_CLIENT_ID": "1234.apps.googleusercontent.com",
    "MM_GOOGLE_CLIENT_SECRET": "a-real-google-secret",
    "MM_AUTH_ENCRYPTION_KEYS": f'{{"k1": "{REAL_KEY}"}}',
    "MM_AUTH_ENCRYPTION_ACTIVE_KEY": "k1",
    "MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN": "1//0a-real-system-refresh-token",
    "MM_COMPLIANCE_SECRET_KEY": REAL_KEY,
}
# What .env.example, docker-compose.yml and the all-in-one's emulator give a development run
# (the encryption key is the built-in default when its variables are unset).
PUBLISHED = {
    "MM_INTERNAL_QUEUE_TOKEN": DEV_QUEUE_TOKEN,
    "MM_INTERNAL_SENDER_TOKEN": DEV_SENDER_TOKEN,
    "MM_GOOGLE_CLIENT_ID": "mailmerger-dev",
    "MM_GOOGLE_CLIENT_SECRET": DEV_GOOGLE_CLIENT_SECRET,
}
PRODUCTION = {"MM_ENVIRONMENT": "production"}


def refused(settings_type: type[Any], env: dict[str, str]) -> list[str]:
    """The problems loading ``settings_type`` from ``env`` reports (none: it loads)."""
    try:
        load_service(settings_type, env)
    except SettingsError as error:
        return error.problems
    return []


def named(problems: list[str]) -> set[str]:
    return {problem.split(" ", 1)[0] for problem in problems}


def test_development_is_the_default_and_takes_the_published_values() -> None:
    """Without MM_ENVIRONMENT, the published values load (make run, compose and the tests)."""
    settings = load_service(AuthSettings, PUBLISHED)
    assert settings.deployment.development
    assert settings.encryption.active_key == "dev"


def test_production_refuses_every_published_value_in_one_message() -> None:
    """One error names each published value auth would run with, and says what to set instead."""
    with pytest.raises(SettingsError) as caught:
        load_service(AuthSettings, {**PUBLISHED, **PRODUCTION})
    problems = caught.value.problems
    assert named(problems) == {
        "MM_INTERNAL_QUEUE_TOKEN",
        "MM_INTERNAL_SENDER_TOKEN",
        "MM_GOOGLE_CLIENT_SECRET",
        "MM_AUTH_ENCRYPTION_KEYS",
        "MM_AUTH_ENCRYPTION_ACTIVE_KEY",
        "MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN",
    }
    assert len(problems) == 6
    assert all("MM_ENVIRONMENT=production" in problem for problem in problems)
    message = str(caught.value)
    assert "set a secret of your own" in message
    assert "your Google OAuth client" in message
    assert "make it the active key" in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MM_INTERNAL_QUEUE_TOKEN", DEV_QUEUE_TOKEN),
        ("MM_INTERNAL_SENDER_TOKEN", DEV_SENDER_TOKEN),
        ("MM_GOOGLE_CLIENT_SECRET", DEV_GOOGLE_CLIENT_SECRET),
        ("MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN", DEV_SYSTEM_MAIL_REFRESH_TOKEN),
    ],
)
def test_production_refuses_each_published_credential_alone(variable: str, value: str) -> None:
    """With everything else real, the one published value is the one problem."""
    assert named(refused(AuthSettings, {**REAL, **PRODUCTION, variable: value})) == {variable}


def test_production_refuses_the_development_key_id_even_with_a_real_key() -> None:
    """An active key named ``dev`` is refused, whatever its bytes."""
    env = {**REAL, **PRODUCTION, "MM_AUTH_ENCRYPTION_KEYS": f'{{"dev": "{REAL_KEY}"}}'}
    env["MM_AUTH_ENCRYPTION_ACTIVE_KEY"] = "dev"
    assert named(refused(AuthSettings, env)) == {"MM_AUTH_ENCRYPTION_ACTIVE_KEY"}


def test_production_refuses_the_development_key_kept_under_another_id() -> None:
    """The published key's bytes are refused under any id, active or kept for old secrets."""
    keys = f'{{"k1": "{REAL_KEY}", "old": "{DEV_ENCRYPTION_KEY}"}}'
    problems = refused(AuthSettings, {**REAL, **PRODUCTION, "MM_AUTH_ENCRYPTION_KEYS": keys})
    assert named(problems) == {"MM_AUTH_ENCRYPTION_KEYS"}
    assert "id old" in problems[0]


# The published values each service would run with: the credentials its settings read (each
# process holds only those), auth's Google client and encryption key, the queue's secret key.
REFUSED_BY_SERVICE = {
    "auth": {
        "MM_INTERNAL_QUEUE_TOKEN",
        "MM_INTERNAL_SENDER_TOKEN",
        "MM_GOOGLE_CLIENT_SECRET",
        "MM_AUTH_ENCRYPTION_KEYS",
        "MM_AUTH_ENCRYPTION_ACTIVE_KEY",
        "MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN",
    },
    "templates": {"MM_INTERNAL_QUEUE_TOKEN"},
    "queue": {"MM_INTERNAL_QUEUE_TOKEN", "MM_COMPLIANCE_SECRET_KEY"},
    "storage": {"MM_INTERNAL_QUEUE_TOKEN"},
    "sender": {"MM_INTERNAL_SENDER_TOKEN"},
}


@pytest.mark.parametrize("service", sorted(registry()))
def test_every_service_refuses_the_published_values_it_reads(service: str) -> None:
    """Each service (the sender worker too) refuses, in production, the published values among
    the variables it reads, and loads with real ones."""
    settings_type = registry()[service].settings_type
    assert named(refused(settings_type, {**PUBLISHED, **PRODUCTION})) == REFUSED_BY_SERVICE[service]
    assert refused(settings_type, {**REAL, **PRODUCTION}) == []


def test_production_with_real_values_loads() -> None:
    """The happy path: production with secrets of the deployment's own starts."""
    settings = load_service(AuthSettings, {**REAL, **PRODUCTION})
    assert not settings.deployment.development
    assert settings.encryption.active_key == "k1"


def test_refusals_are_reported_with_every_other_bad_variable() -> None:
    """A malformed variable and a published value arrive in the same one error."""
    env = {**REAL, **PRODUCTION, "MM_INTERNAL_QUEUE_TOKEN": DEV_QUEUE_TOKEN, "MM_DB_POOL_SIZE": "many"}
    problems = refused(AuthSettings, env)
    assert named(problems) == {"MM_INTERNAL_QUEUE_TOKEN", "MM_DB_POOL_SIZE='many'"}


def test_an_unknown_environment_is_named_with_its_choices() -> None:
    """MM_ENVIRONMENT takes development or production, and says so."""
    problems = refused(AuthSettings, {**REAL, "MM_ENVIRONMENT": "prod"})
    assert problems == [
        "MM_ENVIRONMENT='prod' is malformed: expected one of development, production "
        "(Invalid enum value 'prod')"
    ]


@pytest.mark.slow  # a process of its own
def test_a_service_started_in_production_with_a_published_credential_exits_naming_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`python -m mailmerger_templates` exits 2 with the message, without a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "mailmerger_templates"],
        env={**PRODUCTION, "MM_INTERNAL_QUEUE_TOKEN": DEV_QUEUE_TOKEN, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "MM_INTERNAL_QUEUE_TOKEN is the published development credential" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_mode_is_refused_in_production_only() -> None:
    """MM_HTTP_DEBUG=true (tracebacks in error answers) is for development."""
    debug = {"MM_HTTP_DEBUG": "true"}
    assert refused(AuthSettings, {**REAL, **debug}) == []
    assert named(refused(AuthSettings, {**REAL, **debug, **PRODUCTION})) == {"MM_HTTP_DEBUG=true"}
    assert refused(AuthSettings, {**REAL, **PRODUCTION}) == []
