"""The README and CONTRIBUTING.md point only at what a clone of the repository has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "CONTRIBUTING.md"]


def _targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def _named_paths(text: str) -> list[str]:
    """Repository paths in inline code: a slash inside; no placeholder (``<name>``), URL, glob or home."""
    return [
        token
        for token in re.findall(r"`([^`\n]+)`", text)
        if "/" in token.rstrip("/") and not token.startswith(("/", "~")) and not re.search(r"[:<…\s*]", token)
    ]


def _make_commands(text: str) -> list[str]:
    """``make X`` in inline code, or at the start of a line in a code block."""
    inline = re.findall(r"`make ([a-z][a-z-]*)", text)
    blocks = re.findall(r"^make ([a-z][a-z-]*)", text, flags=re.MULTILINE)
    return inline + blocks


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_document_names_is_in_the_repository(doc: str) -> None:
    """No path outside the checkout (``../shared/...``) and none that does not exist."""
    missing = [
        path
        for path in _named_paths((ROOT / doc).read_text())
        if not (ROOT / path).exists() or ROOT not in (ROOT / path).resolve().parents
    ]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS)
def test_every_make_target_a_document_names_exists(doc: str) -> None:
    """``make gateway`` and the like: every target the text tells a reader to run is in the Makefile."""
    assert set(_make_commands((ROOT / doc).read_text())) - _targets() == set()
