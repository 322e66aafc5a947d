"""``mailmerger send``: dry run by default, --limit, and a resumable real send with no duplicates."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mailmerger import mailmerge_cli
from mailmerger.apiclient import Api
from tests.system.harness import SystemUnderTest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEMPLATE = EXAMPLES / "template.html"
RECIPIENTS = EXAMPLES / "recipients.csv"


def dry(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return mailmerge_cli.main(
        ["--template", str(TEMPLATE), "--csv", str(RECIPIENTS), *argv], out=out
    ), out.getvalue()


def test_dry_run_prints_each_message_rendered_with_its_rows_fields() -> None:
    """Without --no-dry-run nothing is sent: each row's To, Subject and HTML body are printed."""
    code, out = dry()
    assert code == 0, out
    assert out.count("----- message ") == 5
    assert "To: grace@example.org\nSubject: Grace, a quick question about Compilers Inc\n" in out
    assert "<p>Hi Grace,</p>" in out
    assert "5 message(s) would be sent" in out


def test_limit_renders_only_the_first_rows() -> None:
    """--limit 2 prints the first two rows' messages and no others."""
    code, out = dry("--limit", "2", "--subject", "Hello {{ first_name }}")
    assert code == 0
    assert out.count("----- message ") == 2
    assert "Subject: Hello Ada" in out
    assert "Subject: Hello Grace" in out
    assert "linus@" not in out


def test_a_row_missing_a_field_is_reported_and_fails_the_dry_run() -> None:
    """A template field absent from the CSV makes every row a reported problem and exit code 1."""
    code, out = dry("--subject", "Hi {{ nickname }}")
    assert code == 1
    assert out.count("cannot be rendered") == 5
    assert "nickname" in out


@dataclass
class Sender:
    email: str
    password: str
    gmail: str


@pytest.fixture
async def sender(operated: SystemUnderTest) -> AsyncIterator[Sender]:
    """A signed-up user with a connected emulated Gmail account."""
    tag = uuid.uuid4().hex[:10]
    user = Sender(f"cli-{tag}@example.org", f"pw-{tag}-secret", f"cli-{tag}@gmail.local")

    def sign_up() -> None:
        api = Api(operated.base_url)
        try:
            api.sign_up_confirmed(user.email, user.password, "Cli User")
            api.connect_gmail(user.gmail, "Cli User")
        finally:
            api.close()

    await asyncio.to_thread(sign_up)
    return user


async def send(operated: SystemUnderTest, user: Sender, state: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = [
        "--template", str(TEMPLATE), "--csv", str(RECIPIENTS), "--no-dry-run",
        "--url", operated.base_url, "--email", user.email, "--password", user.password,
        "--state", str(state), "--attach", str(EXAMPLES / "resume.pdf"), "--timeout", "60", *extra,
    ]  # fmt: skip
    code = await asyncio.to_thread(mailmerge_cli.main, argv, out=out)
    return code, out.getvalue()


async def delivered(operated: SystemUnderTest, gmail: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=operated.base_url) as client:
        response = await client.get("/google/_emulator/messages/counts", params={"user": gmail})
    counts: dict[str, int] = response.json()["counts"]
    return counts


async def test_no_dry_run_sends_each_limited_row_once_through_a_campaign(
    operated: SystemUnderTest, sender: Sender, tmp_path: Path
) -> None:
    """--no-dry-run --limit 3 delivers exactly three messages, one per row, and draws a progress bar."""
    code, out = await send(operated, sender, tmp_path / "state.json", "--limit", "3")
    assert code == 0, out
    assert "3/3 done: 3 sent" in out
    counts = await delivered(operated, sender.gmail)
    assert len(counts) == 3
    assert set(counts.values()) == {1}


async def test_running_the_same_send_again_resumes_and_sends_nothing_more(
    operated: SystemUnderTest, sender: Sender, tmp_path: Path
) -> None:
    """A second identical run finds the finished campaign in the state file and sends no duplicate."""
    state = tmp_path / "state.json"
    assert (await send(operated, sender, state))[0] == 0
    code, out = await send(operated, sender, state)
    assert code == 0, out
    assert "resuming campaign" in out
    counts = await delivered(operated, sender.gmail)
    assert len(counts) == 5
    assert set(counts.values()) == {1}


async def test_a_send_interrupted_before_launch_resumes_the_same_campaign(
    operated: SystemUnderTest, sender: Sender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the campaign was built: the re-run launches that campaign, each row sent once."""
    state = tmp_path / "state.json"
    launch = mailmerge_cli.launch

    def interrupted(api: Api, campaign_id: int) -> None:
        monkeypatch.setattr(mailmerge_cli, "launch", launch)
        raise KeyboardInterrupt

    monkeypatch.setattr(mailmerge_cli, "launch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        await send(operated, sender, state)
    assert await delivered(operated, sender.gmail) == {}
    code, out = await send(operated, sender, state)
    assert code == 0, out
    assert "resuming campaign" in out
    assert "(draft)" in out
    counts = await delivered(operated, sender.gmail)
    assert len(counts) == 5
    assert set(counts.values()) == {1}
