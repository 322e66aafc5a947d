"""``mailmerger webhooks listen``: a development receiver that verifies and prints webhook events.

Point an endpoint at it (``http://127.0.0.1:8765/``, allowed by the development allowlist), give it
the endpoint's secret, and every delivery is checked the way a real receiver should check it — with
the ``standardwebhooks`` library, against the raw body and the ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` headers — then printed one line each. A delivery
whose signature does not verify is answered 401 (so MailMerger retries it and logs the attempt)
and reported on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

MAX_BODY = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="webhooks_command", required=True)
    listen = commands.add_parser("listen", help="receive, verify and print webhook deliveries")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    listen.add_argument(
        "--secret",
        default=os.environ.get("MM_WEBHOOK_SECRET"),
        help="the endpoint's signing secret (whsec_...); default: $MM_WEBHOOK_SECRET",
    )


def run(args: argparse.Namespace) -> int:
    if not args.secret:
        print(
            "mailmerger webhooks listen: give the endpoint's secret with --secret whsec_... "
            "(it is shown once, when the endpoint is created)",
            file=sys.stderr,
        )
        return 2
    try:
        verifier = Webhook(args.secret)
    except Exception:  # the library raises several kinds for a secret that is not base64
        print("mailmerger webhooks listen: --secret is not a whsec_ secret", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), _handler(verifier, sys.stdout, sys.stderr))
    print(
        f"listening on http://{args.host}:{server.server_port}/ (Ctrl-C stops)", file=sys.stderr, flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _handler(verifier: Webhook, out: TextIO, err: TextIO) -> type[BaseHTTPRequestHandler]:
    # Deliveries are handled on threads of their own: one line is written whole, under a lock, so
    # two events never share a line (print writes the text and the newline separately).
    lock = threading.Lock()

    def say(stream: TextIO, line: str) -> None:
        with lock:
            stream.write(line + "\n")
            stream.flush()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return
            body = self.rfile.read(length)
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as exc:
                say(err, f"refused {self.headers.get('webhook-id')}: {exc}")
                self._answer(HTTPStatus.UNAUTHORIZED)
                return
            say(out, f"{self.headers['webhook-id']} {event.get('type')} {json.dumps(event.get('data'))}")
            self._answer(HTTPStatus.NO_CONTENT)

        def _answer(self, status: HTTPStatus) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per event is printed above; no access log

    return Receiver
