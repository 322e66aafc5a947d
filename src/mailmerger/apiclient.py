"""A small synchronous client of the public API, for ``mailmerger demo``, ``send``, ``login`` and
``connect``.

It takes the steps a user takes through the gateway (sign up, connect Gmail, upload, write a
template, build and launch a campaign, watch it) and draws a plain-text progress bar; nothing
here knows the services' internals. Where the gateway is: ``addresses.public_url`` (the
environment and ``.env``, as the system itself reads them).
"""

from __future__ import annotations

import csv
import html
import io
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

EMULATOR_PREFIX = "/google"
_CONFIRMATION_TOKEN = re.compile(r"/confirm\?(?:[^\s]*&)?token=([A-Za-z0-9_-]+)")
_RECONNECT = "run `mailmerger connect --gmail {email}`, then this command again"
_FINAL = ("completed", "cancelled")
_PENDING = ("scheduled", "dispatched")


class ApiError(Exception):
    """The API refused a step; the message names the step and quotes the problem's detail."""


def unreachable(base_url: str, exc: httpx.TransportError) -> str:
    """One line for a gateway that does not answer (instead of httpx's traceback)."""
    if isinstance(exc, httpx.ConnectError):
        why = "connection refused"
    elif isinstance(exc, httpx.TimeoutException):
        why = "no answer in time"
    else:
        why = type(exc).__name__
    return (
        f"nothing answers at {base_url} ({why}): start MailMerger with `make run`, or point at it with "
        "--url, MAILMERGER_URL or MM_HTTP_PUBLIC_URL"
    )


class Api:
    """One user's session against the gateway at ``base_url``."""

    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._transport = transport
        self.http = httpx.Client(base_url=self.base_url, timeout=60.0, transport=transport)

    def close(self) -> None:
        self.http.close()

    def _expect(self, response: httpx.Response, step: str, *statuses: int) -> Any:
        if response.status_code not in statuses:
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise ApiError(f"{step}: HTTP {response.status_code}: {detail}")
        return response.json() if response.content else None

    # --- steps --------------------------------------------------------------------------------

    def ready(self) -> bool:
        try:
            return self.http.get("/ready", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    def sign_up(self, email: str, password: str, name: str) -> dict[str, Any] | None:
        """Sign up: the session (``user_id``, ``refresh_token``…), whose access token is used from
        now; None when the address must be confirmed first (auth mailed a link to it)."""
        response = self.http.post(
            "/v1/auth/signup", json={"email": email, "password": password, "name": name}
        )
        answer: dict[str, Any] = self._expect(response, "sign up", 201, 202)
        if response.status_code == 202:
            return None
        self.http.headers["Authorization"] = f"Bearer {answer['access_token']}"
        return answer

    def sign_up_confirmed(
        self, email: str, password: str, name: str, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Sign up and, when auth asks for the address to be confirmed, confirm it through the
        Google emulator (development: the letter is in its mailboxes); the session."""
        session = self.sign_up(email, password, name)
        if session is not None:
            return session
        if not self.uses_google_emulator():
            raise ApiError(
                f"sign up: open the link mailed to {email} to confirm the address, then "
                f"`mailmerger login --email {email}`"
            )
        return self.confirm_through_emulator(email, timeout=timeout)

    def confirm_through_emulator(self, email: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Open the confirmation link auth mailed to ``email``, read from the Google emulator (it
        keeps every message it delivered), as its reader would; the session the link starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self._expect(self.http.get(f"{EMULATOR_PREFIX}/_emulator/messages"), "read mail", 200)
            for message in reversed(messages["messages"]):
                addressed = email.lower() in " ".join(message.get("to", [])).lower()
                link = _CONFIRMATION_TOKEN.search(message.get("text") or "") if addressed else None
                if link is not None:
                    response = self.http.post("/v1/auth/email-confirmations/confirm", json={"token": link[1]})
                    session: dict[str, Any] = self._expect(response, "confirm the address", 200)
                    self.http.headers["Authorization"] = f"Bearer {session['access_token']}"
                    return session
            time.sleep(0.3)
        raise ApiError(f"sign up: no confirmation mail reached {email} within {timeout:.0f} s")

    def log_in(self, email: str, password: str) -> dict[str, Any]:
        """Log in; the session (``user_id``, ``refresh_token``…), whose access token is used from now."""
        session: dict[str, Any] = self._expect(
            self.http.post("/v1/auth/login", json={"email": email, "password": password}), "log in", 200
        )
        self.http.headers["Authorization"] = f"Bearer {session['access_token']}"
        return session

    def renew(self, refresh_token: str) -> dict[str, Any]:
        """Continue a saved session: its refresh token is spent, the new session returned."""
        response = self.http.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
        if response.status_code == 401:
            raise ApiError("the saved session has ended: log in again with `mailmerger login`")
        session: dict[str, Any] = self._expect(response, "renew the session", 200)
        self.http.headers["Authorization"] = f"Bearer {session['access_token']}"
        return session

    def uses_google_emulator(self) -> bool:
        """Whether the system's Google is the emulator mounted at ``/google`` (``make run``)."""
        try:
            response = self.http.get(f"{EMULATOR_PREFIX}/.well-known/openid-configuration", timeout=10)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def emulator_knows(self, gmail: str) -> bool | None:
        """Whether the Google emulator holds the account ``gmail`` (None: no emulator to ask). It
        keeps its accounts and grants in memory: after ``make run`` restarts, it knows none."""
        if not self.uses_google_emulator():
            return None
        response = self.http.get(f"{EMULATOR_PREFIX}/_emulator/users", timeout=10)
        if response.status_code != 200:
            return None
        return any(user["email"] == gmail.lower() for user in response.json().get("users", []))

    def connect_ticket(self, *, reply_detection: bool = False) -> str:
        """The URL that connects a Gmail account to this user when a browser opens it;
        ``reply_detection`` also asks for gmail.metadata (replies and bounces stop follow-ups)."""
        body = {"reply_detection": True} if reply_detection else None
        response = self.http.post("/v1/auth/google/connect-tickets", json=body)
        ticket = self._expect(response, "connect ticket", 201)
        return str(ticket["url"])

    def connect_gmail(
        self, gmail: str, name: str, *, timeout: float = 30.0, reply_detection: bool = False
    ) -> int:
        """Connect ``gmail`` (the Google emulator) through a connect ticket; the sending account's id."""
        self.approve_at_emulator(self.connect_ticket(reply_detection=reply_detection), gmail, name)
        return self.wait_for_sender(gmail, timeout=timeout)

    def approve_at_emulator(self, url: str, gmail: str, name: str) -> None:
        """Open a connect URL as a browser would and approve at the Google emulator as ``gmail``.

        A fresh "browser" (a cookie jar) opens the URL and answers Google's consent page,
        whether the emulator approves by itself (``MM_EMULATOR_AUTO_APPROVE``) or shows the form.
        """
        with httpx.Client(base_url=self.base_url, timeout=30.0, transport=self._transport) as browser:
            response = browser.get(url)
            self._expect_redirect(response, "open the connect link")
            google = urlsplit(response.headers["location"])
            query = {**{k: v[0] for k, v in parse_qs(google.query).items()}, "login_hint": gmail}
            response = browser.get(urlunsplit(google._replace(query=urlencode(query))))
            if response.status_code == 200:  # the consent page: choose a new account and allow
                response = browser.post(
                    _form_action(response.text),
                    data={
                        "consent_id": _hidden(response.text, "consent_id"),
                        "account": "new",
                        "new_email": gmail,
                        "new_name": name,
                        "decision": "approve",
                    },
                )
            self._expect_redirect(response, "approve at Google")
            response = browser.get(response.headers["location"])  # back to auth's callback
            self._expect_redirect(response, "finish the connection")
            if "#at=" not in response.headers["location"]:
                raise ApiError(f"connect Gmail: the callback did not connect: {response.headers['location']}")

    def wait_for_sender(
        self, gmail: str | None, *, timeout: float = 30.0, besides: dict[int, str] | None = None
    ) -> int:
        """The account id of ``gmail`` (any account, when None) once the queue knows it connected:
        it learns of a connection from auth's event. ``besides`` are accounts (id → state) that
        do not count as they stand (those there were before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sender in self.senders():
                if sender["state"] != "connected" or (gmail and sender["email"] != gmail.lower()):
                    continue
                if (besides or {}).get(int(sender["account_id"])) != "connected":
                    return int(sender["account_id"])
            time.sleep(0.2)
        if gmail is None:
            raise ApiError(f"connect Gmail: no account was connected within {timeout:.0f} s")
        raise ApiError(f"connect Gmail: {gmail} was not connected within {timeout:.0f} s")

    @staticmethod
    def _expect_redirect(response: httpx.Response, step: str) -> None:
        if response.status_code not in (302, 303) or "location" not in response.headers:
            raise ApiError(f"connect Gmail ({step}): HTTP {response.status_code}: {response.text[:300]}")

    def senders(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._expect(self.http.get("/v1/senders/"), "list senders", 200)
        return found

    def sending_account(self, account_id: int | None) -> dict[str, Any]:
        """The account to send from (``account_id``, or the first connected one), checked to be able
        to send now: connected, and known to Google (the emulator forgets on a restart)."""
        senders = self.senders()
        if account_id is not None:
            chosen = next((s for s in senders if int(s["account_id"]) == account_id), None)
            if chosen is None:
                raise ApiError(f"you have no Gmail account {account_id}: `mailmerger connect` lists yours")
        else:
            chosen = next((s for s in senders if s["state"] == "connected"), None) or next(
                iter(senders), None
            )
            if chosen is None:
                raise ApiError(
                    "no Gmail account is connected: run `mailmerger connect` (or `mailmerger demo`)"
                )
        email = str(chosen["email"])
        if chosen["state"] != "connected":
            raise ApiError(
                f"Gmail account {email} is {chosen['state'].replace('_', ' ')}: "
                + _RECONNECT.format(email=email)
            )
        if self.emulator_knows(email) is False:
            raise ApiError(
                f"the Google emulator no longer knows {email}: it keeps its accounts and grants in memory, "
                "so restarting `make run` forgot them; " + _RECONNECT.format(email=email)
            )
        return chosen

    def upload(self, path: Path, *, kind: str = "other", content_type: str | None = None) -> int:
        media = content_type or _content_type(path)
        response = self.http.post(
            "/v1/attachments/", files={"file": (path.name, path.read_bytes(), media)}, data={"kind": kind}
        )
        return int(self._expect(response, f"upload {path.name}", 201)["id"])

    def create_template(self, name: str, subject: str, html_body: str) -> tuple[int, int]:
        body = {"name": name, "subject": subject, "html": html_body}
        created = self._expect(self.http.post("/v1/templates/", json=body), "create the template", 201)
        return int(created["id"]), int(created["version"])

    def create_campaign(
        self,
        name: str,
        *,
        account_id: int,
        template: tuple[int, int],
        attachment_ids: list[int],
        address_column: str = "email",
        follow_ups: Sequence[tuple[tuple[int, int], int]] = (),
    ) -> int:
        """A draft campaign; ``follow_ups``: (template, delay in hours) of each later step, in order."""
        body: dict[str, Any] = {
            "name": name,
            "account_id": account_id,
            "template_id": template[0],
            "template_version": template[1],
            "attachment_ids": attachment_ids,
            "address_column": address_column,
        }
        if follow_ups:
            body["steps"] = [
                {"template_id": step[0], "template_version": step[1], "delay_hours": hours}
                for step, hours in follow_ups
            ]
        return int(
            self._expect(self.http.post("/v1/campaigns/", json=body), "create the campaign", 201)["id"]
        )

    def upload_recipients(self, campaign_id: int, csv_bytes: bytes) -> dict[str, Any]:
        response = self.http.put(
            f"/v1/campaigns/{campaign_id}/recipients",
            content=csv_bytes,
            headers={"Content-Type": "text/csv"},
        )
        summary: dict[str, Any] = self._expect(response, "upload the recipients", 200)
        return summary

    def launch(self, campaign_id: int) -> None:
        self._expect(self.http.post(f"/v1/campaigns/{campaign_id}/launch", json={}), "launch", 200)

    def campaign(self, campaign_id: int) -> dict[str, Any] | None:
        response = self.http.get(f"/v1/campaigns/{campaign_id}")
        if response.status_code == 404:
            return None
        found: dict[str, Any] = self._expect(response, "read the campaign", 200)
        return found

    def results(self, campaign_id: int) -> list[dict[str, str]]:
        """The campaign's results.csv: one line per email of a row (step 1, then its follow-ups)."""
        response = self.http.get(f"/v1/campaigns/{campaign_id}/results.csv")
        if response.status_code != 200:
            self._expect(response, "read the results", 200)
        return list(csv.DictReader(io.StringIO(response.text)))

    def progress(self, campaign_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self._expect(
            self.http.get(f"/v1/campaigns/{campaign_id}/progress"), "read the progress", 200
        )
        return found

    def watch(
        self,
        campaign_id: int,
        *,
        out: TextIO | None = None,
        timeout: float = 600.0,
        interval: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        account_id: int | None = None,
    ) -> dict[str, Any]:
        """Poll the campaign's progress, drawing a bar, until nothing is pending; the last progress.

        With ``account_id``, an account that stops being able to send (Google revoked it, or the
        emulator forgot it) ends the wait with what to do, instead of waiting out ``timeout``.
        """
        bar = ProgressBar(out or sys.stderr, clock=clock)
        deadline = clock() + timeout
        while True:
            progress = self.progress(campaign_id)
            pending = sum(progress["counts"].get(state, 0) for state in _PENDING)
            finished = progress["state"] in _FINAL or bool(progress["total"] and not pending)
            bar.draw(progress, finished=finished)
            if finished:
                bar.finish()
                return progress
            if account_id is not None:
                self._still_sending_from(account_id, bar)
            if clock() > deadline:
                bar.finish()
                raise ApiError(f"campaign {campaign_id} still has {pending} pending after {timeout:.0f}s")
            sleep(interval)

    def _still_sending_from(self, account_id: int, bar: ProgressBar) -> None:
        sender = next((s for s in self.senders() if int(s["account_id"]) == account_id), None)
        if sender is not None and sender["state"] != "connected":
            bar.finish()
            email = sender["email"]
            raise ApiError(
                f"Gmail account {email} became {sender['state'].replace('_', ' ')}; its messages wait: "
                + _RECONNECT.format(email=email)
            )


class ProgressBar:
    """``[#########---------]  9/20 done: 9 sent, 0 failed, 3.1/s, ETA 0:04 (running)``: redrawn in
    place on a terminal, else a line per change.

    The rate is measured here, from the first progress seen; the ETA is the server's when it gives
    one (it knows the caps and sending windows), else what the measured rate leaves. A campaign
    with nothing pending is "completed" even before the server's housekeeping marks it so.
    """

    def __init__(self, out: TextIO, width: int = 30, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._width = width
        self._last = ""
        self._tty = out.isatty()
        self._clock = clock
        self._first: tuple[float, int] | None = None

    def draw(self, progress: dict[str, Any], *, finished: bool = False) -> None:
        total = max(int(progress["total"]), 1)
        counts: dict[str, int] = progress["counts"]
        done = sum(n for state, n in counts.items() if state not in _PENDING)
        filled = self._width * min(done, total) // total
        now = self._clock()
        if self._first is None:
            self._first = (now, done)
        started, done_then = self._first
        rate = (done - done_then) / (now - started) if now > started and done > done_then else None
        line = (
            f"[{'#' * filled}{'-' * (self._width - filled)}] {done}/{progress['total']} done: "
            f"{counts.get('sent', 0)} sent, {counts.get('failed', 0)} failed"
        )
        if rate is not None:
            line += f", {_rate(rate)}"
        eta = None if finished else progress.get("eta_seconds")
        if eta is None and not finished and rate:
            eta = (int(progress["total"]) - done) / rate
        if eta is not None:
            line += f", ETA {_duration(float(eta))}"
        state = progress["state"] if progress["state"] in _FINAL or not finished else "completed"
        line += f" ({state})"
        if line == self._last:
            return
        self._last = line
        self._out.write(f"\r\x1b[K{line}" if self._tty else f"{line}\n")
        self._out.flush()

    def finish(self) -> None:
        if self._tty:
            self._out.write("\n")
            self._out.flush()


def _rate(per_second: float) -> str:
    return f"{per_second:.1f}/s" if per_second >= 1 else f"{per_second * 60:.1f}/min"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(max(round(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _form_action(page: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', page)
    if match is None:
        raise ApiError("connect Gmail: the consent page has no form")
    return html.unescape(match.group(1))


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name={name} value="([^"]*)"', page) or re.search(
        rf'name="{name}" value="([^"]*)"', page
    )
    if match is None:
        raise ApiError(f"connect Gmail: the consent page has no {name}")
    return html.unescape(match.group(1))


def _content_type(path: Path) -> str:
    return {
        ".pdf": "application/pdf",
        ".txt": "text/plain",
        ".html": "text/html",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".csv": "text/csv",
        ".doc": "application/msword",
        ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }.get(path.suffix.lower(), "application/octet-stream")
