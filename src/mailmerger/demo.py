"""``mailmerger demo``: a newcomer's first campaign against a running ``make run``.

Signs up a demo user, connects an emulated Gmail account (the Google emulator mounted at
``/google``), uploads ``examples/resume.pdf``, writes ``examples/template.html`` as a template,
sends a campaign to ``examples/recipients.csv`` with a progress bar, and says where to read the
delivered mail (``/google/_emulator/mailbox``). Nothing here reaches a real Google account.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import httpx

from mailmerger.account_cli import Sessions
from mailmerger.addresses import public_url
from mailmerger.apiclient import EMULATOR_PREFIX, Api, ApiError, unreachable
from mailmerger.mailmerge_cli import read_rows, read_template

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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
    step(f"connecting the emulated Gmail account {gmail}")
    account_id = api.connect_gmail(gmail, "Demo Newcomer")
    step(f"uploading {args.resume.name}")
    resume_id = api.upload(args.resume, kind="resume")
    template = read_template(args.template)
    step(f"creating the template from {args.template.name}: subject {template.subject!r}")
    template_ref = api.create_template("Demo application", template.subject, template.html)
    _, rows = read_rows(args.recipients, None)
    step(f"creating a campaign for the {len(rows)} recipients of {args.recipients.name}")
    campaign_id = api.create_campaign(
        "Demo campaign", account_id=account_id, template=template_ref, attachment_ids=[resume_id]
    )
    summary = api.upload_recipients(campaign_id, args.recipients.read_bytes())
    if summary.get("problems"):
        out.write(f"    rows with problems: {summary['problems']}\n")
    step(f"launching campaign {campaign_id}")
    api.launch(campaign_id)
    final = api.watch(campaign_id, out=out, timeout=args.timeout)
    sent = final["counts"].get("sent", 0)
    mailbox = f"{api.base_url}{EMULATOR_PREFIX}/_emulator/mailbox?user={gmail}"
    out.write(
        f"\nDone: {sent} of {final['total']} messages sent from {gmail}.\n"
        f"  read them:        {mailbox}\n"
        f"  log in as:        {email} / {password}\n"
        f"  campaign results: {api.base_url}/v1/campaigns/{campaign_id}/results.csv (with a bearer token)\n"
        f"  send your own:    uv run mailmerger send --template {args.template} --csv {args.recipients} "
        "--no-dry-run  (as the demo user: its session is saved; `mailmerger login` switches)\n"
    )
    return 0 if sent == final["total"] else 1
