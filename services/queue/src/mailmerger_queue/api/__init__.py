"""HTTP routes of the queue service: each ``api`` module's ``ROUTES``, gathered by ``routes``."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from mailmerger_queue.api import campaigns, compliance, emails, legacy, senders, webhooks
from mailmerger_queue.settings import QueueSettings


def routes(settings: QueueSettings) -> list[ControllerRouterHandler]:
    return [
        *emails.ROUTES,
        *campaigns.ROUTES,
        *senders.ROUTES,
        *legacy.ROUTES,
        *compliance.ROUTES,
        *webhooks.ROUTES,
    ]
