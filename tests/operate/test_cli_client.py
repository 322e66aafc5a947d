"""The CLI as a newcomer uses it: it finds the system where the configuration says, says in one
line when nothing answers, and signs up, connects Gmail and sends without a password in sight."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from mailmerger import account_cli, mailmerge_cli
from tests.support import free_port
from tests.system.harness import SystemUnderTest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEND = ["send", "--template", str(EXAMPLES / "template.html"), "--csv", str(EXAMPLES / "recipients.csv")]


def mailmerger(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "MAILMERGER_URL"}
    return subprocess.run(
        [sys.executable, "-m", "mailmerger.cli", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow  # a CLI process of its own
def test_send_with_nothing_answering_says_so_in_one_line(tmp_path: Path) -> None:
    """--no-dry-run against a port nobody listens on: one line saying nothing answers there, no traceback."""
    url = f"http://127.0.0.1:{free_port()}"
    result = mailmerger(
        *SEND, "--no-dry-run", "--url", url, "--email", "a@example.org", "--password", "p", cwd=tmp_path
    )
    assert result.returncode == 1
    assert (result.stdout + result.stderr).splitlines() == [
        f"mailmerger send: nothing answers at {url} (connection refused): start MailMerger with `make run`, "
        "or point at it with --url, MAILMERGER_URL or MM_HTTP_PUBLIC_URL"
    ]


@pytest.mark.slow
def test_send_finds_the_system_at_the_public_url_the_dotenv_file_gives(tmp_path: Path) -> None:
    """Without --url, send goes to .env's MM_HTTP_PUBLIC_URL, as the system itself reads it."""
    url = f"http://127.0.0.1:{free_port()}"
    (tmp_path / ".env").write_text(f"MM_HTTP_PUBLIC_URL={url}\n")
    result = mailmerger(*SEND, "--no-dry-run", "--email", "a@example.org", "--password", "p", cwd=tmp_path)
    assert f"nothing answers at {url} " in result.stdout


@pytest.mark.slow
def test_demo_finds_the_system_at_the_port_the_dotenv_file_gives(tmp_path: Path) -> None:
    """Without --url, the demo goes where .env's MM_HTTP_PORT puts the system."""
    port = free_port()
    (tmp_path / ".env").write_text(f"MM_HTTP_PORT={port}\n")
    result = mailmerger("demo", cwd=tmp_path)
    assert result.returncode == 2
    assert f"nothing ready at http://127.0.0.1:{port}/ready" in result.stdout


def cli(command: str, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    if command == "send":
        code = mailmerge_cli.main(list(argv), out=out)
    else:
        code = account_cli.main(command, list(argv), out=out)
    return code, out.getvalue()


async def test_login_and_connect_let_send_go_out_without_a_password(operated: SystemUnderTest) -> None:
    """`login --sign-up`, `connect --gmail` (the emulator's consent answered by the CLI), then `send`
    with neither --email nor --password delivers every row once."""
    tag = uuid.uuid4().hex[:8]
    email, gmail, url = f"cli-{tag}@example.org", f"cli-{tag}@gmail.local", operated.base_url
    code, out = await asyncio.to_thread(
        cli, "login", "--url", url, "--sign-up", "--email", email, "--password", "a long passphrase"
    )
    assert code == 0, out
    code, out = await asyncio.to_thread(cli, "connect", "--url", url, "--gmail", gmail)
    assert code == 0, out
    assert f"Gmail account {gmail} is connected" in out
    code, out = await asyncio.to_thread(cli, *SEND, "--no-dry-run", "--url", url, "--timeout", "60")
    assert code == 0, out
    async with httpx.AsyncClient(base_url=url) as client:
        counts = (await client.get("/google/_emulator/messages/counts", params={"user": gmail})).json()
    assert counts["total"] == 5
    assert set(counts["counts"].values()) == {1}


async def test_send_keeps_its_resume_state_in_the_users_state_directory(
    operated: SystemUnderTest, state_directory: Path
) -> None:
    """Without --state, the campaign a send became is recorded in the state directory, not beside the CSV."""
    tag = uuid.uuid4().hex[:8]
    url = operated.base_url
    await asyncio.to_thread(
        cli,
        "login",
        "--url",
        url,
        "--sign-up",
        "--email",
        f"st-{tag}@example.org",
        "--password",
        "a long passphrase",
    )
    await asyncio.to_thread(cli, "connect", "--url", url, "--gmail", f"st-{tag}@gmail.local")
    code, out = await asyncio.to_thread(cli, *SEND, "--limit", "1", "--no-dry-run", "--url", url)
    assert code == 0, out
    assert list((state_directory / "mailmerger").glob("send-state.json"))
    assert not list(EXAMPLES.glob("*mailmerger-state*"))
