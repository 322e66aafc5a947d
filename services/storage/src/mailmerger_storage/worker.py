"""Reacting to other services' events: a deleted user's attachments are purged."""

from __future__ import annotations

import logging

from mailmerger_shared import contracts as c
from mailmerger_shared.broker.consumer import Handler
from mailmerger_shared.runtime import Infrastructure
from mailmerger_storage.adapters.blobs import BlobStore
from mailmerger_storage.service import purge_user

log = logging.getLogger(__name__)

USER_DELETED_QUEUE = "storage.user-deleted"


def user_deleted_handler(infra: Infrastructure, blobs: BlobStore) -> Handler:
    """Purge the user's rows and objects; safe to run again for the same (redelivered) event."""
    sessions = infra.sessions
    assert sessions is not None, "purging needs the database"

    async def handle(message: c.Message, envelope: c.Envelope) -> None:
        if not isinstance(message, c.UserDeleted):  # the queue is bound to UserDeleted only
            return
        removed = await purge_user(sessions, blobs, message.user_id)
        log.info(
            "purged a deleted user's attachments", extra={"user_id": message.user_id, "objects": removed}
        )

    return handle
