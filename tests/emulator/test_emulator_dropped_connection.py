"""The accepted-then-dropped fault, against a real uvicorn server: only a real socket can die."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.emulator.helpers import build_message, mint_token, send
from tests.support import eventually

pytestmark = pytest.mark.slow  # an emulator process of its own

_SERVE = """
import sys, uvicorn
from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
uvicorn.run(create_app(load(GoogleEmulatorSettings)), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", loop="uvloop", http="httptools")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
async def live_emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator under uvicorn in a subprocess, and a client for it."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MM_")}
    env["MM_EMULATOR_PUBLIC_URL"] = base_url
    log = Path(tmp_path_factory.mktemp("uvicorn")) / "emulator.log"
    with log.open("wb") as output:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SERVE, str(port), env=env, stdout=output, stderr=output
        )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/.well-known/openid-configuration")).status_code == 200
            except httpx.TransportError:
                return False

        try:
            await eventually(ready, timeout=20)
            yield client
        finally:
            server.terminate()
            await server.wait()


@pytest.fixture
async def live(live_emulator: httpx.AsyncClient) -> httpx.AsyncClient:
    """The live emulator, reset for this test."""
    await live_emulator.post("/_emulator/reset")
    return live_emulator


async def test_dropped_send_is_stored_but_never_answered(live: httpx.AsyncClient) -> None:
    """The message is accepted, then the connection dies: the client sees a transport error."""
    token = await mint_token(live)
    await live.post("/_emulator/faults", json={"kind": "drop_connection", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        await send(live, token, build_message(message_id="<dropped@x>"))
    counts = (await live.get("/_emulator/messages/counts")).json()["counts"]
    assert counts == {"dropped@x": 1}


async def test_call_after_a_drop_is_answered(live: httpx.AsyncClient) -> None:
    """count=1 drops one answer only; the next send is answered normally."""
    token = await mint_token(live)
    await live.post("/_emulator/faults", json={"kind": "drop_connection", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        await send(live, token, build_message())
    assert (await send(live, token, build_message())).status_code == 200
    assert (await live.get("/_emulator/messages/counts")).json()["total"] == 2


async def test_drop_rate_applies_to_reads_too(live: httpx.AsyncClient) -> None:
    """A rate-based drop rule for getProfile loses that answer as well."""
    token = await mint_token(live)
    await live.post(
        "/_emulator/faults", json={"kind": "drop_connection", "rate": 1.0, "methods": ["getProfile"]}
    )
    with pytest.raises(httpx.RemoteProtocolError):
        await live.get("/gmail/v1/users/me/profile", headers={"Authorization": f"Bearer {token}"})
    assert (await send(live, token, build_message())).status_code == 200
