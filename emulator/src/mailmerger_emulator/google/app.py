"""The composition root: one Litestar app holding one emulator's state."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import uvicorn
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from litestar import Litestar

from mailmerger_emulator.google.admin import admin_router
from mailmerger_emulator.google.errors import GoogleApiError, OAuthError
from mailmerger_emulator.google.gmail import gmail_router
from mailmerger_emulator.google.http import (
    google_api_error_response,
    oauth_error_response,
    route_not_found_response,
    unexpected_error_response,
)
from mailmerger_emulator.google.oauth import oauth_router
from mailmerger_emulator.google.oauth_tokens import token_router
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_emulator.google.signing import IdTokenSigner, generate_signing_key
from mailmerger_emulator.google.state import EmulatorState
from mailmerger_shared.serving import server_config

# Room for the JSON envelope around a base64-encoded message of the largest accepted size, so
# that an oversized message gets Gmail's error body rather than the framework's 413.
_BASE64_GROWTH = 4 / 3
_ENVELOPE_SLACK = 1024 * 1024


def create_app(
    settings: GoogleEmulatorSettings,
    *,
    clock: Callable[[], float] | None = None,
    signing_key: RSAPrivateKey | None = None,
) -> Litestar:
    """A fresh emulator.

    ``clock`` gives epoch seconds (tests move it to expire tokens and roll quota windows);
    ``signing_key`` lets tests share one RSA key instead of generating one per app.
    """
    signer = IdTokenSigner(signing_key or generate_signing_key())
    state = EmulatorState(settings, clock or time.time, signer)
    routers = [oauth_router(state), token_router(state), gmail_router(state)]
    if settings.deployment.development:  # anyone reaching it could mint tokens and read every mailbox
        routers.append(admin_router(state))
    return Litestar(
        route_handlers=routers,
        exception_handlers={
            GoogleApiError: google_api_error_response,
            OAuthError: oauth_error_response,
            404: route_not_found_response,
            405: route_not_found_response,
            500: unexpected_error_response,
        },
        request_max_body_size=int(settings.max_message_bytes * _BASE64_GROWTH) + _ENVELOPE_SLACK,
        openapi_config=None,
        logging_config=None,
    )


def serve(settings: GoogleEmulatorSettings) -> None:
    """Serve the emulator alone on ``settings.host`` and its public URL's port, until stopped."""
    port = urlsplit(settings.public_url).port or 80
    uvicorn.Server(server_config(create_app(settings), settings.host, port)).run()
