"""The development values this repository publishes are exactly the ones production refuses: the
credentials of .env.example and docker-compose.yml, and the Google emulator's client secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from mailmerger import compose, standins
from mailmerger.services import registry
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import (
    DEV_GOOGLE_CLIENT_SECRET,
    DEV_QUEUE_TOKEN,
    DEV_SENDER_TOKEN,
    DEV_SYSTEM_MAIL_REFRESH_TOKEN,
    SettingsError,
    load,
    load_service,
)

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_publishes_the_refused_credentials_and_says_development() -> None:
    """.env.example runs as development, with the credentials production refuses."""
    example = dotenv_values(ROOT / ".env.example")
    assert example["MM_ENVIRONMENT"] == "development"
    assert example["MM_INTERNAL_QUEUE_TOKEN"] == DEV_QUEUE_TOKEN
    assert example["MM_INTERNAL_SENDER_TOKEN"] == DEV_SENDER_TOKEN


def test_compose_publishes_the_refused_values() -> None:
    """docker-compose.yml's fallback credentials and its Google client secret are the refused ones."""
    fallbacks = compose.DEV_CREDENTIALS  # what compose runs with unless the shell sets them
    assert fallbacks == {
        "MM_INTERNAL_QUEUE_TOKEN": f"${{MM_INTERNAL_QUEUE_TOKEN:-{DEV_QUEUE_TOKEN}}}",
        "MM_INTERNAL_SENDER_TOKEN": f"${{MM_INTERNAL_SENDER_TOKEN:-{DEV_SENDER_TOKEN}}}",
    }
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["auth"]["environment"]["MM_GOOGLE_CLIENT_SECRET"] == DEV_GOOGLE_CLIENT_SECRET


def test_the_emulator_and_the_all_in_one_use_the_refused_google_secret() -> None:
    """The emulator's development client and the all-in-one's stand-in share the refused secret."""
    assert standins.DEV_CLIENT_SECRET == DEV_GOOGLE_CLIENT_SECRET
    [client] = load(GoogleEmulatorSettings, {}).clients
    assert client.client_secret == DEV_GOOGLE_CLIENT_SECRET


@pytest.mark.parametrize("service", sorted(registry()))
def test_a_copy_of_env_example_does_not_start_in_production(service: str) -> None:
    """.env.example with MM_ENVIRONMENT=production is refused by every service, naming a credential."""
    example = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v is not None}
    with pytest.raises(SettingsError) as caught:
        load_service(registry()[service].settings_type, {**example, "MM_ENVIRONMENT": "production"})
    assert any(problem.startswith("MM_INTERNAL_") for problem in caught.value.problems)


def test_the_emulators_system_mail_account_is_refused_in_production() -> None:
    """The emulator seeds the system's mail account with the published refresh token that auth
    uses by default; production refuses that token, naming its variable."""
    emulator = load(GoogleEmulatorSettings, {})
    assert emulator.system_mail_refresh_token == DEV_SYSTEM_MAIL_REFRESH_TOKEN
    example = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v is not None}
    with pytest.raises(SettingsError) as caught:
        load_service(registry()["auth"].settings_type, {**example, "MM_ENVIRONMENT": "production"})
    assert any(problem.startswith("MM_SYSTEM_MAIL_GMAIL_REFRESH_TOKEN") for problem in caught.value.problems)
