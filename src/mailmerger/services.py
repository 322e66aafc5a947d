"""Which services exist, how to load their settings and build their apps."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Litestar

from mailmerger_shared.settings import load_service


@dataclass(frozen=True)
class Service:
    name: str
    package: str
    settings_type: type[msgspec.Struct]
    factory: Callable[..., Litestar]
    # Background loops that run as their own processes (and inside the all-in-one mode).
    workers: Mapping[str, Callable[[Any], Coroutine[Any, Any, None]]] = field(default_factory=dict)

    def settings(self, env: Mapping[str, str] | None = None) -> Any:
        return load_service(self.settings_type, env)

    def create_app(self, settings: Any, **resources: Any) -> Litestar:
        return self.factory(settings, **resources)


def registry() -> dict[str, Service]:
    # Imported here so that `mailmerger --help` stays fast and a broken service names itself.
    from mailmerger_auth import app as auth_app
    from mailmerger_auth.settings import AuthSettings
    from mailmerger_queue import app as queue_app
    from mailmerger_queue.settings import QueueSettings
    from mailmerger_queue.worker import run_dispatcher
    from mailmerger_sender import app as sender_app
    from mailmerger_sender.settings import SenderSettings
    from mailmerger_sender.worker import run_sender
    from mailmerger_storage import app as storage_app
    from mailmerger_storage.settings import StorageSettings
    from mailmerger_templates import app as templates_app
    from mailmerger_templates.settings import TemplatesSettings

    return {
        s.name: s
        for s in (
            Service("auth", "mailmerger_auth", AuthSettings, auth_app.create_app),
            Service("templates", "mailmerger_templates", TemplatesSettings, templates_app.create_app),
            Service(
                "queue",
                "mailmerger_queue",
                QueueSettings,
                queue_app.create_app,
                {"dispatcher": run_dispatcher},
            ),
            Service(
                "sender", "mailmerger_sender", SenderSettings, sender_app.create_app, {"sender": run_sender}
            ),
            Service("storage", "mailmerger_storage", StorageSettings, storage_app.create_app),
        )
    }
