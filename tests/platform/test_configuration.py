"""The configuration reference and the example environment stay true to the settings types."""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values

from mailmerger.configuration import markdown, variables

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_generated_from_the_settings() -> None:
    """docs/CONFIGURATION.md is what `mailmerger config` prints (regenerate it after adding a setting)."""
    assert (ROOT / "docs" / "CONFIGURATION.md").read_text() == markdown()


def test_env_example_names_only_real_variables() -> None:
    """Every variable in .env.example is read by some process (no typos, nothing stale)."""
    known = {variable.name for variable in variables()}
    example = dotenv_values(ROOT / ".env.example")
    assert set(example) - known == set()


def test_env_example_sets_every_required_variable() -> None:
    """A copy of .env.example is enough to start every process."""
    required = {variable.name for variable in variables() if variable.default == "(required)"}
    assert required <= set(dotenv_values(ROOT / ".env.example"))
