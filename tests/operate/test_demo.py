"""``mailmerger demo``: a newcomer's first campaign against the running system, over real HTTP."""

from __future__ import annotations

import argparse
import asyncio
import io
import re
from collections import Counter

import httpx

from mailmerger import demo
from tests.system.harness import SystemUnderTest


async def test_demo_sends_a_two_step_sequence_that_a_reply_and_a_bounce_stop(
    operated: SystemUnderTest,
) -> None:
    """The demo signs up, connects Gmail with reply detection through the consent form, and sends
    a two-step sequence to the 5 example recipients and 2 that answer: one replies, one bounces.
    Those two get only the first email; the 5 others get the follow-up in their thread."""
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
        sent = (
            await client.get("/google/_emulator/messages", params={"user": gmail, "label": "SENT"})
        ).json()["messages"]
    by_recipient = Counter(message["to"][0] for message in sent)
    answering = {address for address, _ in demo.ANSWERING}
    assert {
        address: count for address, count in by_recipient.items() if address in answering
    } == dict.fromkeys(answering, 1)
    assert sorted(count for address, count in by_recipient.items() if address not in answering) == [2] * 5
    assert len({message["rfc822MessageId"] for message in sent}) == len(sent) == 12
    text = out.getvalue()
    assert "step 1: 7 of 7 emails sent" in text
    assert "1 reply and 1 bounce stopped their follow-ups" in text
    assert "step 2: 5 follow-ups sent" in text
