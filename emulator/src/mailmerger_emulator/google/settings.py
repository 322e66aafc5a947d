"""Settings of the Google emulator (``MM_EMULATOR_*``).

Every absolute URL the emulator emits (issuer, discovery endpoints, consent form action) is built
from ``public_url`` (or, for what a browser opens, ``browser_url``), never from the request, so the
same app works standalone and when mounted under a prefix by a path-stripping router
(``http://127.0.0.1:8080/google``).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from mailmerger_shared.settings import (
    DEV_GOOGLE_CLIENT_SECRET,
    DEV_SYSTEM_MAIL_ADDRESS,
    DEV_SYSTEM_MAIL_REFRESH_TOKEN,
    Deployment,
    Settings,
)

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A registered OAuth client; redirect URIs are matched exactly, as Google does."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    # "testing" or "production": Google ends the refresh tokens of an app in "Testing" publishing
    # status after 7 days (GMAIL_FACTS.md 2.5).
    publishing_status: Literal["testing", "production"] = "production"


def _dev_clients() -> list[OAuthClient]:
    return [
        OAuthClient(
            client_id="mailmerger-dev",
            client_secret=DEV_GOOGLE_CLIENT_SECRET,  # the public development client of the emulator
            redirect_uris=[
                "http://127.0.0.1:8080/v1/auth/google/callback",
                "http://127.0.0.1:8080/api/oauth/oauth2callback",
            ],
        )
    ]


class GoogleEmulatorSettings(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_EMULATOR_"

    public_url: str = "http://127.0.0.1:8090"
    # The address it listens on (port: the public URL's). In a container 0.0.0.0, so that both
    # other containers (google:8090) and its own healthcheck (127.0.0.1:8090) reach it.
    host: str = "127.0.0.1"
    # Where a browser reaches the emulator (the consent page, the mailbox pages), when that is not
    # ``public_url``: in compose, services call http://google:8090 but a browser on the host only
    # knows http://localhost:8090.
    browser_url: str | None = None
    clients: list[OAuthClient] = msgspec.field(default_factory=_dev_clients)
    # Approve every authorization at once for ``login_hint`` (or ``default_user_email``): for tests
    # and scripted demos that cannot click through the consent page.
    auto_approve: bool = False
    default_user_email: str = "tester@gmail.local"
    # MailMerger's own mail account (confirmations, password resets): it exists from the start with
    # a published refresh token for the first client, so the auth service can send through it.
    system_mail_address: str = DEV_SYSTEM_MAIL_ADDRESS
    system_mail_refresh_token: str = DEV_SYSTEM_MAIL_REFRESH_TOKEN
    access_token_ttl_seconds: PositiveInt = 3600
    # Per-user Gmail quota (15,000 units/user/minute for projects older than May 2026) and the
    # account's rolling-24-hour sending cap (Workspace: 2,000; consumer Gmail: 500).
    quota_units_per_minute: PositiveInt = 15_000
    daily_send_cap: PositiveInt = 2_000
    quotas_enabled: bool = True
    max_message_bytes: PositiveInt = 35 * 1024 * 1024
    max_recipients: PositiveInt = 100
    # The JSON (non-upload) ``messages.send`` path refuses bodies above 1 MiB with a 413
    # (GMAIL_FACTS.md 2.5b); large messages go through ``/upload/...``.
    json_send_max_bytes: PositiveInt = 1_048_576
    # History records are "typically available for at least one week" (GMAIL_FACTS.md 2.5); an
    # older ``startHistoryId`` answers 404.
    history_retention_seconds: PositiveInt = 7 * 86_400
    # Mail sent to the answering domains (bounces.example.com, replies.example.com, ooo.example.com,
    # delays.example.com) gets its bounce or reply this many seconds later, on the emulator's clock.
    incoming_rules_enabled: bool = True
    incoming_delay_seconds: Annotated[float, msgspec.Meta(ge=0)] = 3.0
    # MM_ENVIRONMENT: the admin API (``/_emulator``: tokens for anyone, every mailbox, faults,
    # reset) exists only in development.
    deployment: Deployment = msgspec.field(default_factory=Deployment)

    @property
    def base_url(self) -> str:
        """``public_url`` without a trailing slash, ready for joining with a path."""
        return self.public_url.rstrip("/")

    @property
    def browser_base_url(self) -> str:
        """``browser_url`` (or ``public_url``) without a trailing slash."""
        return (self.browser_url or self.public_url).rstrip("/")
