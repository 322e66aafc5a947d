"""Local stand-ins for the outside world, so the all-in-one mode needs no account anywhere.

With no Google client configured, the Google emulator is mounted under ``/google`` on the public
port and auth and the sender are pointed at it. With no S3 endpoint or keys configured, a local S3
(moto) is started on loopback. Configuring the real thing switches each stand-in off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailmerger.local_s3 import LocalS3

EMULATOR_PREFIX = "/google"
DEV_CLIENT_ID = "mailmerger-dev"
DEV_CLIENT_SECRET = "mailmerger-dev-secret"  # noqa: S105 (the emulator's public development client)


@dataclass
class StandIns:
    """What to add to the environment, what to mount, and what to stop at the end."""

    environment: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, Any] = field(default_factory=dict)
    local_s3: LocalS3 | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.local_s3 is not None:
            self.local_s3.stop()


def redirect_uris(public_url: str) -> list[str]:
    """Where Google sends the browser back: sign-in (v1) and the legacy client's Gmail connect."""
    return [f"{public_url}/v1/auth/google/callback", f"{public_url}/api/oauth/oauth2callback"]


def start_stand_ins(env: Mapping[str, str], *, public_url: str, local_s3_port: int) -> StandIns:
    stand_ins = StandIns()
    if not env.get("MM_GOOGLE_CLIENT_ID"):
        _mount_google_emulator(stand_ins, env, public_url.rstrip("/"))
    if not env.get("MM_S3_ENDPOINT_URL") and not env.get("MM_S3_ACCESS_KEY_ID"):
        s3 = LocalS3(port=local_s3_port).start()
        stand_ins.local_s3 = s3
        stand_ins.environment.update(s3.environment(env.get("MM_S3_BUCKET", "mailmerger-attachments")))
        stand_ins.notes.append(
            f"local S3 (moto)  {s3.endpoint_url}  (in memory: gone when this process stops)"
        )
    return stand_ins


def _mount_google_emulator(stand_ins: StandIns, env: Mapping[str, str], public_url: str) -> None:
    from mailmerger_emulator.google.app import create_app
    from mailmerger_emulator.google.settings import GoogleEmulatorSettings
    from mailmerger_shared.settings import load

    emulator_url = public_url + EMULATOR_PREFIX
    clients = [
        {
            "client_id": DEV_CLIENT_ID,
            "client_secret": DEV_CLIENT_SECRET,
            "redirect_uris": redirect_uris(public_url),
        }
    ]
    emulator_env = {"MM_EMULATOR_PUBLIC_URL": emulator_url, "MM_EMULATOR_CLIENTS": json.dumps(clients), **env}
    stand_ins.mounts[EMULATOR_PREFIX] = create_app(load(GoogleEmulatorSettings, emulator_env))
    stand_ins.environment.update(
        {
            "MM_GOOGLE_CLIENT_ID": DEV_CLIENT_ID,
            "MM_GOOGLE_CLIENT_SECRET": DEV_CLIENT_SECRET,
            "MM_GOOGLE_DISCOVERY_URL": f"{emulator_url}/.well-known/openid-configuration",
            "MM_GMAIL_API_URL": emulator_url,
            "MM_SYSTEM_MAIL_GMAIL_API_URL": emulator_url,  # the system's letters: the emulator's account
            # The emulator offers the restricted gmail.metadata scope: reply and bounce detection.
            "MM_GOOGLE_METADATA_TIER": "true",
        }
    )
    stand_ins.notes.append(
        f"Google emulator  {emulator_url}  (mailbox: {emulator_url}/_emulator/mailbox; in memory: "
        "after a restart, `mailmerger connect --gmail <address>` again)"
    )
