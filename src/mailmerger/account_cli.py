"""``mailmerger login`` and ``mailmerger connect``: an account and a Gmail connection from the CLI.

``login`` signs up (``--sign-up``) or logs in and keeps the session (its refresh token) in the
user's state directory, so that ``connect`` and ``send`` need no password afterwards; each use
renews it (refresh tokens rotate). ``connect`` asks auth for a connect link, opens it in a
browser (or prints it) and waits until the queue knows the account. Against the Google emulator
of ``make run``, ``connect --gmail ADDRESS`` approves the consent itself: no browser at all.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx

from mailmerger.addresses import public_url
from mailmerger.apiclient import Api, ApiError, unreachable


def state_dir() -> Path:
    """Where the CLI keeps its state (sessions, ``send``'s resume file): the XDG state directory."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mailmerger"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only, atomically (a crash leaves the old or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


class Sessions:
    """Saved sessions, one per gateway URL: the email and the current refresh token."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "sessions.json"

    def _all(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        loaded: dict[str, Any] = json.loads(self.path.read_text())
        return loaded

    def get(self, base_url: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._all().get(base_url)
        return found

    def save(self, base_url: str, email: str, session: dict[str, Any]) -> None:
        saved = self._all()
        saved[base_url] = {
            "email": email,
            "user_id": session["user_id"],
            "refresh_token": session["refresh_token"],
        }
        write_private(self.path, json.dumps(saved, indent=2, sort_keys=True))


def authenticate(api: Api, email: str | None, password: str | None, sessions: Sessions | None = None) -> str:
    """Log ``api`` in with ``email``/``password``, else with the session ``login`` saved; the email."""
    if email and password:
        api.log_in(email, password)
        return email
    sessions = sessions or Sessions()
    saved = sessions.get(api.base_url)
    if saved is None or (email and saved["email"] != email):
        raise ApiError(
            f"not logged in at {api.base_url}: run `mailmerger login --email you@example.org` "
            "(with --sign-up the first time), or give --email and --password"
        )
    sessions.save(api.base_url, saved["email"], api.renew(saved["refresh_token"]))
    return str(saved["email"])


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass(f"MailMerger password for {args.email}: ")
    raise ApiError("give --password (or MAILMERGER_PASSWORD)")


# --- login ---------------------------------------------------------------------------------------


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", default=os.environ.get("MAILMERGER_EMAIL"), help="your MailMerger login")
    parser.add_argument(
        "--password", default=os.environ.get("MAILMERGER_PASSWORD"), help="(asked if not given)"
    )
    parser.add_argument("--sign-up", action="store_true", help="create the account first")
    parser.add_argument("--name", help="your name, for --sign-up (default: from the email)")
    parser.add_argument(
        "--url", help="the gateway (default: MAILMERGER_URL, MM_HTTP_PUBLIC_URL, MM_HTTP_PORT)"
    )


def login(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    if not args.email:
        raise ApiError("give --email (or MAILMERGER_EMAIL)")
    password = _password(args)
    if args.sign_up:
        name = args.name or args.email.split("@", 1)[0].replace(".", " ").title()
        session = api.sign_up_confirmed(args.email, password, name)
        verb = "signed up and logged in"
    else:
        session = api.log_in(args.email, password)
        verb = "logged in"
    sessions = Sessions()
    sessions.save(api.base_url, args.email, session)
    out.write(
        f"{verb} as {args.email} at {api.base_url} (session kept in {sessions.path}).\n"
        "Next: `mailmerger connect` to connect Gmail.\n"
    )
    return 0


# --- connect -------------------------------------------------------------------------------------


def add_connect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gmail", help="the Gmail address to connect (with the Google emulator: approved without a browser)"
    )
    parser.add_argument(
        "--name", help="the account's display name at the emulator (default: from the address)"
    )
    parser.add_argument(
        "--reply-detection",
        action="store_true",
        help="also allow reading message headers (gmail.metadata): replies and bounces stop follow-ups",
    )
    parser.add_argument("--no-browser", action="store_true", help="print the link instead of opening it")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the connection")
    parser.add_argument(
        "--email", default=os.environ.get("MAILMERGER_EMAIL"), help="(default: the saved login)"
    )
    parser.add_argument("--password", default=os.environ.get("MAILMERGER_PASSWORD"))
    parser.add_argument(
        "--url", help="the gateway (default: MAILMERGER_URL, MM_HTTP_PUBLIC_URL, MM_HTTP_PORT)"
    )


def connect(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    authenticate(api, args.email, args.password)
    before = {int(s["account_id"]): str(s["state"]) for s in api.senders()}
    link = api.connect_ticket(reply_detection=args.reply_detection)
    if args.gmail and api.uses_google_emulator():
        name = args.name or args.gmail.split("@", 1)[0].replace(".", " ").title()
        api.approve_at_emulator(link, args.gmail, name)
        account_id = api.wait_for_sender(args.gmail, timeout=min(args.timeout, 60.0))
    else:
        out.write(
            f"Open this link in a browser to connect Gmail (it works once, for a few minutes):\n  {link}\n"
        )
        if api.uses_google_emulator():
            out.write("  (the Google emulator: --gmail ADDRESS connects without a browser)\n")
        if not args.no_browser:
            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(link)
        out.write("waiting for the connection...\n")
        out.flush()
        account_id = api.wait_for_sender(args.gmail, timeout=args.timeout, besides=before)
    email = next(s["email"] for s in api.senders() if int(s["account_id"]) == account_id)
    out.write(
        f"Gmail account {email} is connected (account {account_id}). Send with:\n"
        "  mailmerger send --template T.html --csv people.csv --no-dry-run\n"
    )
    return 0


# --- running either ------------------------------------------------------------------------------


def run(command: str, args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    api = Api(args.url or public_url())
    try:
        return {"login": login, "connect": connect}[command](args, api, out)
    except ApiError as exc:
        out.write(f"mailmerger {command}: {exc}\n")
        return 1
    except httpx.TransportError as exc:
        out.write(f"mailmerger {command}: {unreachable(api.base_url, exc)}\n")
        return 1
    finally:
        api.close()


def main(command: str, argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"mailmerger {command}")
    {"login": add_login_arguments, "connect": add_connect_arguments}[command](parser)
    return run(command, parser.parse_args(argv), out=out)
