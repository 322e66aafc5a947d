"""What a newcomer sees when `make run` cannot start: one line naming the setting and what to do,
never a traceback, and promptly (or at once on Ctrl-C), never a hang."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailmerger.serve import build_all_in_one
from tests.support import free_port


def mailmerger(
    *argv: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``mailmerger <argv>`` in ``cwd`` (no .env there), with ``env`` as its only MM_ variables."""
    return subprocess.run(
        [sys.executable, "-m", "mailmerger.cli", *argv],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error, asserted to be a single line with no traceback anywhere."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run_env(service_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The run's infrastructure, on free ports (the base, its internal port and local S3 follow it)."""
    return {**service_env, "MM_HTTP_PORT": str(free_port()), "MM_RUN_INTERNAL_PORT": str(free_port()),
            "MM_RUN_LOCAL_S3_PORT": str(free_port()), **extra}  # fmt: skip


@pytest.mark.slow  # a CLI process of its own
def test_migrate_with_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    """A wrong MM_DB_URL: `mailmerger migrate` (`make run`'s first step) names PostgreSQL and the variable."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/mailmerger"
    line = one_line(mailmerger("migrate", env={"MM_DB_URL": url}, cwd=tmp_path))
    assert "PostgreSQL" in line
    assert "MM_DB_URL" in line
    assert "connection refused" in line


def test_run_with_an_unreachable_database_says_so_in_one_line(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """A wrong MM_DB_URL: `mailmerger run` stops with one line naming PostgreSQL and the variable."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/mailmerger"
    line = one_line(mailmerger("run", env=run_env(service_env, MM_DB_URL=url), cwd=tmp_path))
    assert line.startswith("mailmerger: cannot reach PostgreSQL at 127.0.0.1:")
    assert "MM_DB_URL" in line


def test_a_missing_rabbitmq_vhost_is_named_with_how_to_create_it(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """MM_AMQP_URL naming a vhost RabbitMQ does not have: one line naming the vhost, not InvalidFrameError."""
    url = service_env["MM_AMQP_URL"].rsplit("/", 1)[0] + "/no_such_vhost"
    line = one_line(mailmerger("run", env=run_env(service_env, MM_AMQP_URL=url), cwd=tmp_path))
    assert "virtual host 'no_such_vhost'" in line
    assert "MM_AMQP_URL" in line
    assert "rabbitmqctl add_vhost no_such_vhost" in line


def test_a_port_in_use_is_named_with_its_variable(
    service_env: dict[str, str], tmp_path: Path, taken_port: int
) -> None:
    """The gateway's port taken: one line naming the port and MM_HTTP_PORT."""
    env = run_env(service_env, MM_HTTP_PORT=str(taken_port))
    line = one_line(mailmerger("run", env=env, cwd=tmp_path))
    assert f"port {taken_port} on 127.0.0.1 is already in use (MM_HTTP_PORT)" in line


def test_a_taken_local_s3_port_ends_start_up_at_once_naming_its_variable(
    service_env: dict[str, str], tmp_path: Path, taken_port: int
) -> None:
    """The local S3's port taken: start-up ends within seconds (it hung) with one line naming it."""
    env = run_env(service_env, MM_RUN_LOCAL_S3_PORT=str(taken_port))
    line = one_line(mailmerger("run", env=env, cwd=tmp_path, timeout=60))
    assert f"port {taken_port} on 127.0.0.1 is already in use (MM_RUN_LOCAL_S3_PORT)" in line


def test_an_unreachable_broker_is_waited_for_as_long_as_the_setting_says(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """MM_AMQP_STARTUP_WAIT_SECONDS=3 with no broker: a wait of 3 s, then one line naming both settings."""
    env = run_env(
        service_env,
        MM_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        MM_AMQP_STARTUP_WAIT_SECONDS="3",
    )
    result = mailmerger("run", env=env, cwd=tmp_path)
    line = one_line(result)
    assert "waiting for RabbitMQ" in result.stdout
    assert "cannot reach RabbitMQ" in line
    assert "after waiting 3 s (MM_AMQP_STARTUP_WAIT_SECONDS)" in line


def test_the_all_in_one_start_up_outlasts_the_broker_wait_the_settings_allow(
    service_env: dict[str, str],
) -> None:
    """MM_AMQP_STARTUP_WAIT_SECONDS=120 is not cut short: the apps may take longer than that to start."""
    public, _, _, stand_ins = build_all_in_one({**service_env, "MM_AMQP_STARTUP_WAIT_SECONDS": "120"})
    stand_ins.stop()
    assert public.startup_timeout > 120


def test_ctrl_c_while_waiting_for_the_broker_stops_at_once(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGINT during start-up (waiting up to 120 s for RabbitMQ) ends the process within seconds."""
    env = run_env(service_env, MM_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailmerger.cli", "run"],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the condition: it says it waits
            if "waiting for RabbitMQ" in line:
                break
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        process.wait(timeout=15)
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 130
