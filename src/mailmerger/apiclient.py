"""A small synchronous client of the public API, for ``mailmerger demo`` and ``mailmerger send``.

It takes the steps a user takes through the gateway (sign up, connect Gmail, upload, write a
template, build and launch a campaign, watch it) and draws a plain-text progress bar; nothing
here knows the services' internals.
"""

from __future__ import annotations

import html
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
EMULATOR_PREFIX = "/google"
_FINAL = ("completed", "cancelled")
_PENDING = ("scheduled", "dispatched")


class ApiError(Exception):
    """The API refused a step; the message names the step and quotes the problem's detail."""


class Api:
    """One user's session against the gateway at ``base_url``."""

    def __init__(self, base_url: str = DEFAULT_URL, *, transport: httpx.BaseTransport | None = None) -> None:
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

    def sign_up(self, email: str, password: str, name: str) -> int:
        session = self._expect(
            self.http.post("/v1/auth/signup", json={"email": email, "password": password, "name": name}),
            "sign up",
            201,
        )
        self.http.headers["Authorization"] = f"Bearer {session['access_token']}"
        return int(session["user_id"])

    def log_in(self, email: str, password: str) -> int:
        session = self._expect(
            self.http.post("/v1/auth/login", json={"email": email, "password": password}), "log in", 200
        )
        self.http.headers["Authorization"] = f"Bearer {session['access_token']}"
        return int(session["user_id"])

    def connect_gmail(self, gmail: str, name: str, *, timeout: float = 30.0) -> int:
        """Connect ``gmail`` (the Google emulator) through a connect ticket; the sending account's id.

        A fresh "browser" (a cookie jar) opens the ticket's URL and answers Google's consent page,
        whether the emulator approves by itself (``MM_EMULATOR_AUTO_APPROVE``) or shows the form.
        """
        ticket = self._expect(self.http.post("/v1/auth/google/connect-tickets"), "connect ticket", 201)
        with httpx.Client(base_url=self.base_url, timeout=30.0, transport=self._transport) as browser:
            response = browser.get(ticket["url"])
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the queue learns of the account from auth's event
            for sender in self._expect(self.http.get("/v1/senders/"), "list senders", 200):
                if sender["email"] == gmail:
                    return int(sender["account_id"])
            time.sleep(0.2)
        raise ApiError(f"connect Gmail: {gmail} was connected but the queue did not learn of it")

    @staticmethod
    def _expect_redirect(response: httpx.Response, step: str) -> None:
        if response.status_code not in (302, 303) or "location" not in response.headers:
            raise ApiError(f"connect Gmail ({step}): HTTP {response.status_code}: {response.text[:300]}")

    def senders(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._expect(self.http.get("/v1/senders/"), "list senders", 200)
        return found

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
    ) -> int:
        body = {
            "name": name,
            "account_id": account_id,
            "template_id": template[0],
            "template_version": template[1],
            "attachment_ids": attachment_ids,
            "address_column": address_column,
        }
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
    ) -> dict[str, Any]:
        """Poll the campaign's progress, drawing a bar, until nothing is pending; the last progress."""
        bar = ProgressBar(out or sys.stderr)
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress(campaign_id)
            bar.draw(progress)
            pending = sum(progress["counts"].get(state, 0) for state in _PENDING)
            if progress["state"] in _FINAL or (progress["total"] and not pending):
                bar.finish()
                return progress
            if time.monotonic() > deadline:
                bar.finish()
                raise ApiError(f"campaign {campaign_id} still has {pending} pending after {timeout:.0f}s")
            sleep(interval)


class ProgressBar:
    """``[#########-----------]  9/20 sent, 0 failed``: redrawn in place on a terminal, else per change."""

    def __init__(self, out: TextIO, width: int = 30) -> None:
        self._out = out
        self._width = width
        self._last = ""
        self._tty = out.isatty()

    def draw(self, progress: dict[str, Any]) -> None:
        total = max(int(progress["total"]), 1)
        counts: dict[str, int] = progress["counts"]
        done = sum(n for state, n in counts.items() if state not in _PENDING)
        filled = self._width * done // total
        line = (
            f"[{'#' * filled}{'-' * (self._width - filled)}] {done}/{progress['total']} done: "
            f"{counts.get('sent', 0)} sent, {counts.get('failed', 0)} failed ({progress['state']})"
        )
        if line == self._last:
            return
        self._last = line
        self._out.write(f"\r{line}" if self._tty else f"{line}\n")
        self._out.flush()

    def finish(self) -> None:
        if self._tty:
            self._out.write("\n")
            self._out.flush()


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
