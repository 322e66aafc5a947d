"""A local S3 (moto) for development and tests, so uploads work with no account anywhere.

Objects live in this process's memory and vanish with it; any access key is accepted. That is why
it only ever listens on a loopback address.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import threading
from types import TracebackType

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from mailmerger.listeners import listening_socket

# moto accepts any credentials; these only need to be present and consistent.
ACCESS_KEY_ID = "local-s3"
SECRET_ACCESS_KEY = "local-s3-secret"  # noqa: S105 (moto checks no secret)
REGION = "us-east-1"


class LocalS3:
    """A moto S3 server on ``host:port`` (port 0: any free port), served from a background thread.

    Use as a context manager, or ``start()``/``stop()``. ``endpoint_url`` is known once started.
    The socket is bound in the caller's thread, so a port in use raises ``OSError`` from
    ``start()`` (moto's own ``ThreadedMotoServer`` binds in its thread and then waits forever for
    a server that never came up, deaf to Ctrl-C; werkzeug binding it would exit the process).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", quiet: bool = True) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the local S3 accepts any credentials: it listens on loopback only, not {host}")
        self._host = host
        self._port = port
        self._quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._bound: tuple[str, int] | None = None

    @property
    def endpoint_url(self) -> str:
        if self._bound is None:
            raise RuntimeError("the local S3 is not running; call start() first")
        host, port = self._bound
        return f"http://{host}:{port}"

    def environment(self, bucket: str = "mailmerger-attachments") -> dict[str, str]:
        """``MM_S3_*`` variables that point the storage service at this server."""
        return {
            "MM_S3_ENDPOINT_URL": self.endpoint_url,
            "MM_S3_REGION": REGION,
            "MM_S3_BUCKET": bucket,
            "MM_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "MM_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "MM_S3_ADDRESSING_STYLE": "path",
        }

    def start(self) -> LocalS3:
        if self._server is not None:
            return self
        if self._quiet:
            # werkzeug logs every request moto serves; keep that out of our own logs.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = DomainDispatcherApplication(create_backend_app)
        with listening_socket(self._host, self._port) as sock:  # werkzeug serves a duplicate of it
            server = make_server(
                self._host,
                self._port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=sock.fileno(),
            )
        self._thread = threading.Thread(target=server.serve_forever, name="local-s3", daemon=True)
        self._thread.start()
        self._server = server
        host, port = server.server_address[:2]
        self._bound = (str(host), int(port))
        return self

    def stop(self) -> None:
        if self._server is not None:
            server, self._server, self._bound = self._server, None, None
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m mailmerger.local_s3 --port N``: a quiet local S3 until SIGTERM or SIGINT
    (``run-split`` runs it as the compose topology's ``s3`` container)."""
    parser = argparse.ArgumentParser(prog="python -m mailmerger.local_s3", description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    with LocalS3(port=args.port) as s3:
        print(f"local S3 (moto) on {s3.endpoint_url}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
