"""``mailmerger demo``: a newcomer's first campaign against the running system, over real HTTP."""

from __future__ import annotations

import argparse
import asyncio
import io
import re

import httpx

from mailmerger import demo
from tests.system.harness import SystemUnderTest


async def test_demo_sends_every_example_recipient_one_message_and_names_the_mailbox(
    operated: SystemUnderTest,
) -> None:
    """The demo signs up, connects Gmail through the consent form, sends 5 mails and links the mailbox."""
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    out = io.StringIO()
    code = await asyncio.to_thread(demo.run, parser.parse_args(["--url", operated.base_url]), out=out)
    assert code == 0, out.getvalue()
    mailbox = re.search(r"read them:\s+(\S+)", out.getvalue())
    assert mailbox is not None, out.getvalue()
    gmail = mailbox.group(1).rsplit("user=", 1)[1]
    async with httpx.AsyncClient(base_url=operated.base_url) as client:
        page = await client.get(mailbox.group(1).removeprefix(operated.base_url))
        assert page.status_code == 200
        counts = (await client.get("/google/_emulator/messages/counts", params={"user": gmail})).json()
    assert counts["total"] == 5
    assert set(counts["counts"].values()) == {1}
    assert "5/5 done: 5 sent" in out.getvalue()
