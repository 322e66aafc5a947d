"""``mailmerger demo``: a newcomer's first campaign against a running ``make run``.

Signs up a demo user, connects an emulated Gmail account with reply detection (the Google
emulator mounted at ``/google``), uploads ``examples/resume.pdf``, writes
``examples/template.html`` as a template, and sends a two-step sequence to
``examples/recipients.csv`` plus two addresses at the emulator's answering domains: one replies
(``replies.example.com``), one bounces (``bounces.example.com``). It shows the first emails going,
the reply and the bounce stopping those two rows, and the follow-up reaching everyone else in
their threads; then says where to read the mail (``/google/_emulator/mailbox``). Nothing here
reaches a real Google account.

The follow-up waits one hour of ``MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS`` (``.env.example`` makes
that 10 s in development); when it would outlast ``--timeout`` the demo says when it goes.
"""

from __future__ import annotations

import argparse
import csv
import io
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from mailmerger.account_cli import Sessions
from mailmerger.addresses import public_url
from mailmerger.apiclient import EMULATOR_PREFIX, Api, ApiError, unreachable
from mailmerger.mailmerge_cli import read_template

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Rows the demo adds: the Google emulator answers mail to these domains by itself.
ANSWERING = [("rosalind@replies.example.com", "Rosalind"), ("edsger@bounces.example.com", "Edsger")]
FOLLOW_UP_HTML = (
    "<p>Hi {{ first_name }},</p><p>Just following up on my note below: I would love to talk about "
    "the role at {{ company }}.</p><p>Best,<br>Demo Newcomer</p>"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="the gateway (default: MAILMERGER_URL, MM_HTTP_PUBLIC_URL, MM_HTTP_PORT)"
    )
    parser.add_argument("--template", type=Path, default=EXAMPLES / "template.html")
    parser.add_argument("--recipients", type=Path, default=EXAMPLES / "recipients.csv")
    parser.add_argument("--resume", type=Path, default=EXAMPLES / "resume.pdf")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the campaign")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailmerger demo", description=__doc__.split("\n", 1)[0])
    add_arguments(parser)
    return run(parser.parse_args(argv), out=out)


def run(
    args: argparse.Namespace, *, out: TextIO | None = None, transport: httpx.BaseTransport | None = None
) -> int:
    out = out or sys.stdout
    api = Api(args.url or public_url(), transport=transport)
    try:
        return _demo(api, args, out)
    except ApiError as exc:
        out.write(f"\nmailmerger demo: {exc}\n")
        return 1
    except httpx.TransportError as exc:
        out.write(f"mailmerger demo: {unreachable(api.base_url, exc)}\n")
        return 1
    finally:
        api.close()


def _demo(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    def step(text: str) -> None:
        out.write(f"==> {text}\n")
        out.flush()

    if not api.ready():
        out.write(f"mailmerger demo: nothing ready at {api.base_url}/ready; start it with `make run` first\n")
        return 2
    if api.http.get(f"{EMULATOR_PREFIX}/.well-known/openid-configuration").status_code != 200:
        out.write(
            f"mailmerger demo: no Google emulator at {api.base_url}{EMULATOR_PREFIX}; the demo needs "
            "`make run` without MM_GOOGLE_CLIENT_ID (real Google is not for demos)\n"
        )
        return 2
    tag = secrets.token_hex(4)
    email, password = f"demo-{tag}@example.org", secrets.token_urlsafe(12)
    gmail = f"demo-{tag}@gmail.local"

    step(f"signing up {email}")
    # Kept as `mailmerger login` keeps it: `send` and `connect` go on as the demo user.
    Sessions().save(api.base_url, email, api.sign_up_confirmed(email, password, "Demo Newcomer"))
    step(f"connecting the emulated Gmail account {gmail} with reply detection (message headers only)")
    account_id = api.connect_gmail(gmail, "Demo Newcomer", reply_detection=True)
    step(f"uploading {args.resume.name}")
    resume_id = api.upload(args.resume, kind="resume")
    template = read_template(args.template)
    step(f"creating the template from {args.template.name}: subject {template.subject!r}")
    template_ref = api.create_template("Demo application", template.subject, template.html)
    follow_up_ref = api.create_template("Demo follow-up", "(the thread's subject)", FOLLOW_UP_HTML)
    recipients, total = _with_answering_rows(args.recipients.read_text(encoding="utf-8-sig"))
    step(
        f"creating a two-step campaign for the {total} recipients of {args.recipients.name} and "
        f"{' and '.join(a for a, _ in ANSWERING)} (they reply and bounce): the follow-up goes an "
        "hour after the first email, in its thread, to whoever has not answered"
    )
    campaign_id = api.create_campaign(
        "Demo campaign",
        account_id=account_id,
        template=template_ref,
        attachment_ids=[resume_id],
        follow_ups=[(follow_up_ref, 1)],
    )
    summary = api.upload_recipients(campaign_id, recipients.encode())
    if summary.get("problems"):
        out.write(f"    rows with problems: {summary['problems']}\n")
    step(f"launching campaign {campaign_id}")
    api.launch(campaign_id)
    progress, due_later = _follow(api, campaign_id, total, out, timeout=args.timeout)
    results = api.results(campaign_id)
    steps_by_address = Counter(row["address"] for row in results if row["state"] == "sent")
    out.write("\n")
    for address in dict.fromkeys(row["address"] for row in results):
        lines = [row for row in results if row["address"] == address]
        stop = lines[0]["stop_reason"]
        response = next((row["response"] for row in lines if row.get("response")), "")
        what = (
            f"stopped: {stop}"
            if stop
            else "follow-up sent"
            if steps_by_address[address] > 1
            else "follow-up due"
        )
        heard = f" ({response.replace('_', ' ')} found in the mailbox)" if response else ""
        out.write(f"  {address:32} emails sent: {steps_by_address[address]}  {what}{heard}\n")
    mailbox = f"{api.base_url}{EMULATOR_PREFIX}/_emulator/mailbox?user={gmail}"
    first_sent = progress["steps"].get("1", {}).get("sent", 0)
    out.write(
        f"\nDone: {first_sent} of {total} first emails sent from {gmail}; "
        f"{progress['replied']} reply and {progress['bounced']} bounce stopped their follow-ups"
        + (f"; the other follow-ups go at {due_later}" if due_later else "")
        + ".\n"
        f"  read them:        {mailbox}\n"
        f"  log in as:        {email} / {password}\n"
        f"  campaign results: {api.base_url}/v1/campaigns/{campaign_id}/results.csv (with a bearer token)\n"
        f"  send your own:    uv run mailmerger send --template {args.template} --csv {args.recipients} "
        "--no-dry-run  (as the demo user: its session is saved; `mailmerger login` switches)\n"
    )
    answered = progress["replied"] >= 1 and progress["bounced"] >= 1
    return 0 if first_sent == total and answered else 1


def _with_answering_rows(text: str) -> tuple[str, int]:
    """The example list plus the rows that reply and bounce (other columns as the first row's)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    fields = list(reader.fieldnames or ["email"])
    template_row = rows[0] if rows else {}
    for address, name in ANSWERING:
        rows.append({**template_row, "email": address, "first_name": name})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue(), len(rows)


def _follow(
    api: Api, campaign_id: int, total: int, out: TextIO, *, timeout: float
) -> tuple[dict[str, Any], str | None]:
    """Say what happens as it happens, until the campaign completes; or, once the first emails
    went and the answers came, until the follow-ups are due later than ``timeout`` allows (then
    also when they go)."""
    deadline = time.monotonic() + timeout
    said: set[str] = set()

    def say(key: str, text: str) -> None:
        if key not in said:
            said.add(key)
            out.write(f"    {text}\n")
            out.flush()

    while True:
        progress = api.progress(campaign_id)
        first = progress["steps"].get("1", {})
        if first.get("sent", 0) + first.get("failed", 0) >= total:
            say("first", f"step 1: {first.get('sent', 0)} of {total} emails sent")
        if progress["replied"]:
            say(
                "reply",
                f"{ANSWERING[0][0]} replied: the watcher found it in the thread; no follow-up for them",
            )
        if progress["bounced"]:
            say(
                "bounce",
                f"{ANSWERING[1][0]} bounced: no follow-up, and the address is on your suppression list",
            )
        if progress["state"] == "completed":
            follow_ups = progress["steps"].get("2", {}).get("sent", 0)
            say("second", f"step 2: {follow_ups} follow-ups sent, each in its recipient's thread")
            return progress, None
        answered = {"first", "reply", "bounce"} <= said
        eta = progress.get("eta_at")
        if answered and eta is not None:
            due = datetime.fromisoformat(eta)
            if (due - datetime.now(UTC)).total_seconds() > deadline - time.monotonic():
                return progress, due.astimezone().strftime("%H:%M:%S")
        if time.monotonic() > deadline:
            raise ApiError(f"campaign {campaign_id} is not done after {timeout:.0f}s: {progress['counts']}")
        time.sleep(0.5)
