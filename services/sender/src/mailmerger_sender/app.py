"""The sender service: delivery through the Gmail API, by worker processes only.

It has no HTTP app and no public route: each worker (``worker.run_sender``) consumes
``SendEmail`` from RabbitMQ and serves its own probes and metrics on its metrics port, so it is
deployed and scaled as workers alone.
"""

from __future__ import annotations

from mailmerger_sender.settings import SenderSettings
from mailmerger_sender.worker import run_sender
from mailmerger_shared.registration import ServiceRegistration

NAME = "sender"

SERVICE = ServiceRegistration(
    name=NAME, settings_type=SenderSettings, create_app=None, workers={"worker": run_sender}
)
