"""The pages a mailed link opens: ``/v1/auth/email/confirm`` and ``/v1/auth/password/reset``.

Opening a link (GET) changes nothing: mail scanners fetch links before people do. The page holds a
form that POSTs the token back; only that POST confirms the address or sets the password. The
pages carry no script and no third-party resource, and every value in them is escaped.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery

from mailmerger_auth import ownership
from mailmerger_auth.api.deps import PUBLIC
from mailmerger_auth.letters import CONFIRM_PATH, RESET_PATH
from mailmerger_auth.ownership import AccountGuard
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.errors import DomainError
from mailmerger_shared.web.deps import Transaction
from mailmerger_shared.web.pages import page, refusal


class TokenForm(msgspec.Struct, frozen=True):
    token: Annotated[str, msgspec.Meta(max_length=128)]


class PasswordForm(msgspec.Struct, frozen=True):
    token: Annotated[str, msgspec.Meta(max_length=128)]
    new_password: Annotated[str, msgspec.Meta(max_length=1024)]


def _hidden_token(token: str) -> str:
    return f'<input type=hidden name=token value="{html.escape(token, quote=True)}">'


@get(CONFIRM_PATH, opt=PUBLIC, include_in_schema=False)
async def confirm_page(token: FromQuery[str] = "") -> Response[str]:
    return page(
        "Confirm your email address",
        f'<form method=post action="{CONFIRM_PATH}">{_hidden_token(token)}'
        "<p>Confirm that this address is yours.</p><button>Confirm</button></form>",
    )


@post(CONFIRM_PATH, opt=PUBLIC, include_in_schema=False, status_code=200)
async def confirm_form(
    data: Annotated[TokenForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    tx: Transaction,
    issuer: NamedDependency[TokenIssuer],
    now: NamedDependency[datetime],
) -> Response[str]:
    try:
        await ownership.confirm_address(tx, issuer, token=data.token, now=now)
    except DomainError as error:
        return refusal("This link cannot be used", error)
    return page("Address confirmed", "<p>Your address is confirmed. You can sign in now.</p>")


@get(RESET_PATH, opt=PUBLIC, include_in_schema=False)
async def reset_page(token: FromQuery[str] = "") -> Response[str]:
    return page(
        "Choose a new password",
        f'<form method=post action="{RESET_PATH}">{_hidden_token(token)}'
        "<p><label>New password <input type=password name=new_password minlength=8 required "
        "autocomplete=new-password></label></p><button>Set the password</button></form>",
    )


@post(RESET_PATH, opt=PUBLIC, include_in_schema=False, status_code=200)
async def reset_form(
    data: Annotated[PasswordForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    issuer: NamedDependency[TokenIssuer],
    guard: NamedDependency[AccountGuard],
    now: NamedDependency[datetime],
) -> Response[str]:
    try:
        await ownership.reset_password(
            tx, passwords, issuer, guard, token=data.token, new_password=data.new_password, now=now
        )
    except DomainError as error:
        return refusal("The password was not changed", error)
    return page("Password changed", "<p>Your new password is set and every other session ended. Sign in.</p>")


ROUTES = [confirm_page, confirm_form, reset_page, reset_form]
