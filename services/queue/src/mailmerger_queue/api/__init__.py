"""HTTP routes of the queue service."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from mailmerger_queue.api.campaigns import CampaignsController
from mailmerger_queue.api.emails import EmailsController
from mailmerger_queue.api.legacy import LegacyController
from mailmerger_queue.api.senders import SendersController

ROUTES: list[ControllerRouterHandler] = [
    EmailsController,
    CampaignsController,
    SendersController,
    LegacyController,
]
