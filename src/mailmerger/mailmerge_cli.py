"""``mailmerger send``: mail merge from the command line, on the same engine as the service.

Dry run by default: every message is rendered locally with the templates service's own engine
(``mailmerger_templates.rendering``) and printed exactly as it will be sent. ``--no-dry-run`` sends
through the running system's API as one campaign and shows a progress bar.

Who sends: ``--email``/``--password``, or the session ``mailmerger login`` saved. From which Gmail
account: ``--account-id``, or the first connected one (``mailmerger connect`` connects one); an
account that cannot send now (reconnect required, or forgotten by a restarted Google emulator)
is named with what to do before anything is sent.

Resuming without duplicates: the run is identified by a fingerprint of everything that decides
what is sent (template, subject, the rows, attachments, sending account). The campaign id is
written to a state file (in the user's state directory) as soon as the campaign exists; a later
run with the same fingerprint continues *that* campaign and asks the server what state it is in:
a draft is (re)built and launched (the list upload replaces the list; launching is allowed once),
a launched one is only watched. Rows live inside one server-side campaign, so no row can be sent
twice by re-running. An interruption before the state file was written leaves at most an
unlaunched draft behind.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from mailmerger.account_cli import authenticate, state_dir, write_private
from mailmerger.addresses import public_url
from mailmerger.apiclient import Api, ApiError, unreachable

_SUBJECT_COMMENT = re.compile(r"^\s*<!--\s*subject:\s*(.*?)\s*-->\s*\n?", re.IGNORECASE)


@dataclass(frozen=True)
class TemplateFile:
    subject: str
    html: str


def read_template(path: Path, subject: str | None = None) -> TemplateFile:
    """An HTML template; its subject is ``subject`` or the file's leading ``<!-- subject: … -->``."""
    text = path.read_text(encoding="utf-8")
    match = _SUBJECT_COMMENT.match(text)
    if match is not None:
        text = text[match.end() :]
    chosen = subject if subject is not None else (match.group(1) if match else None)
    if not chosen:
        raise SystemExit(f"{path}: give --subject or start the file with <!-- subject: ... -->")
    return TemplateFile(subject=chosen, html=text)


def read_rows(path: Path, limit: int | None) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = [dict(row) for row in reader]
        columns = list(reader.fieldnames or [])
    return columns, rows if limit is None else rows[:limit]


def as_csv(columns: list[str], rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


# --- dry run ----------------------------------------------------------------------------------


def dry_run(
    template: TemplateFile, rows: list[dict[str, str]], to_column: str, attachments: list[Path], out: TextIO
) -> int:
    """Print every message as it will be sent; the number of rows that cannot be rendered."""
    from mailmerger_templates.rendering import Renderer, RowError, TemplateInvalid, TemplateSource

    renderer = Renderer()
    try:
        compiled = renderer.compile(TemplateSource(subject=template.subject, html=template.html))
    except TemplateInvalid as invalid:
        for problem in invalid.problems:
            out.write(f"template problem: {problem}\n")
        return len(rows) or 1
    failures = 0
    for number, (row, result) in enumerate(zip(rows, renderer.render_batch(compiled, rows), strict=True), 1):
        out.write(f"----- message {number} of {len(rows)} -----\n")
        if isinstance(result, RowError):
            failures += 1
            out.write(f"row {number} cannot be rendered: {result.error}\n\n")
            continue
        out.write(f"To: {row.get(to_column, '')}\nSubject: {result.subject}\n")
        if attachments:
            out.write(f"Attachments: {', '.join(path.name for path in attachments)}\n")
        out.write(f"\n{result.html.strip()}\n\n")
    out.write(
        f"Dry run: {len(rows) - failures} message(s) would be sent"
        + (f", {failures} row(s) have problems" if failures else "")
        + ". Add --no-dry-run to send them.\n"
    )
    return failures


# --- sending, resumable -----------------------------------------------------------------------


def fingerprint(template: TemplateFile, csv_bytes: bytes, attachments: list[Path], account: str) -> str:
    digest = hashlib.sha256()
    for part in (template.subject.encode(), template.html.encode(), csv_bytes, account.encode()):
        digest.update(hashlib.sha256(part).digest())
    for path in attachments:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class StateFile:
    """Which campaign a fingerprint became, so a re-run continues it instead of sending again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        loaded: dict[str, Any] = json.loads(self.path.read_text())
        return loaded

    def save(self, runs: dict[str, Any]) -> None:
        write_private(self.path, json.dumps(runs, indent=2, sort_keys=True))  # atomic


def send(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    template = read_template(args.template, args.subject)
    columns, rows = read_rows(args.csv, args.limit)
    if not rows:
        out.write("no rows to send\n")
        return 0
    csv_bytes = as_csv(columns, rows)
    authenticate(api, args.email, args.password)
    account = api.sending_account(args.account_id)
    account_id = int(account["account_id"])
    key = fingerprint(template, csv_bytes, args.attach, str(account_id))
    state = StateFile(args.state or default_state_path())
    runs = state.load()
    if args.state is None:
        # Runs recorded beside the CSV, where earlier versions kept them, still resume.
        runs = {**StateFile(_legacy_state_path(args.csv)).load(), **runs}
    run: dict[str, Any] = runs.get(key, {})
    if run.get("url", api.base_url) != api.base_url:
        run = {}  # the same send to another system is another campaign
    campaign = api.campaign(run["campaign_id"]) if "campaign_id" in run else None
    if campaign is None:
        attachment_ids = [api.upload(path) for path in args.attach]
        template_ref = api.create_template(args.name or args.template.stem, template.subject, template.html)
        campaign_id = api.create_campaign(
            args.name or f"{args.template.stem} to {args.csv.name}",
            account_id=account_id,
            template=template_ref,
            attachment_ids=attachment_ids,
            address_column=args.to_column,
        )
        runs[key] = {"campaign_id": campaign_id, "rows": len(rows), "csv": str(args.csv), "url": api.base_url}
        state.save(runs)
        campaign = {"id": campaign_id, "state": "draft"}
        out.write(f"campaign {campaign_id} created for {len(rows)} row(s)\n")
    else:
        out.write(f"resuming campaign {campaign['id']} ({campaign['state']}); nothing is sent twice\n")
    campaign_id = int(campaign["id"])
    if campaign["state"] == "draft":
        summary = api.upload_recipients(campaign_id, csv_bytes)
        if summary.get("problems"):
            out.write(f"rows with problems (left out): {summary['problems']}\n")
        launch(api, campaign_id)
    final = api.watch(campaign_id, out=out, timeout=args.timeout, account_id=account_id)
    counts = final["counts"]
    out.write(
        f"campaign {campaign_id}: {counts.get('sent', 0)} sent, {counts.get('failed', 0)} failed, "
        f"{final.get('skipped', 0)} skipped\n"
    )
    return 0 if not counts.get("failed") else 1


def launch(api: Api, campaign_id: int) -> None:
    api.launch(campaign_id)


def default_state_path() -> Path:
    """The resume state of every send, in the user's state directory (never beside the CSV, where
    it landed untracked in a checkout's ``examples/``)."""
    return state_dir() / "send-state.json"


def _legacy_state_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + ".mailmerger-state.json")


# --- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, required=True, help="HTML template with {{ placeholders }}")
    parser.add_argument("--csv", type=Path, required=True, help="recipients; first line names the columns")
    parser.add_argument("--subject", help="subject template (default: the template's <!-- subject: -->)")
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--attach", type=Path, action="append", default=[], help="a file for every message")
    parser.add_argument("--to-column", default="email", help="the column holding addresses (default: email)")
    parser.add_argument(
        "--no-dry-run", dest="dry_run", action="store_false", help="really send, through the running system"
    )
    parser.add_argument(
        "--url", help="the gateway (default: MAILMERGER_URL, MM_HTTP_PUBLIC_URL, MM_HTTP_PORT)"
    )
    parser.add_argument(
        "--email",
        default=os.environ.get("MAILMERGER_EMAIL"),
        help="your MailMerger login (default: `login`'s)",
    )
    parser.add_argument("--password", default=os.environ.get("MAILMERGER_PASSWORD"))
    parser.add_argument("--account-id", type=int, help="sending Gmail account (default: the first connected)")
    parser.add_argument("--name", help="campaign and template name")
    parser.add_argument(
        "--state", type=Path, help="resume state (default: send-state.json in ~/.local/state/mailmerger)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the campaign")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailmerger send", description=__doc__.split("\n", 1)[0])
    add_arguments(parser)
    return run(parser.parse_args(argv), out=out)


def run(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    for path in [args.template, args.csv, *args.attach]:
        if not path.is_file():
            out.write(f"mailmerger send: no such file: {path}\n")
            return 2
    if args.limit is not None and args.limit < 1:
        out.write("mailmerger send: --limit must be at least 1\n")
        return 2
    if args.dry_run:
        template = read_template(args.template, args.subject)
        _, rows = read_rows(args.csv, args.limit)
        return 1 if dry_run(template, rows, args.to_column, args.attach, out) else 0
    api = Api(args.url or public_url())
    try:
        return send(args, api, out)
    except ApiError as exc:
        out.write(f"mailmerger send: {exc}\n")
        return 1
    except httpx.TransportError as exc:
        out.write(f"mailmerger send: {unreachable(api.base_url, exc)}\n")
        return 1
    finally:
        api.close()
