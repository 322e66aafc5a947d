"""The HTML a person sees in the browser: the consent page and Google's "Access blocked" page.

Every value that came from a request or a test user is escaped; the pages carry no script.
"""

from __future__ import annotations

from html import escape

from mailmerger_emulator.google import scopes as scope_catalog
from mailmerger_emulator.google.accounts import TestUser
from mailmerger_emulator.google.tokens import AuthorizationRequest

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; color: #202124; }
.card { border: 1px solid #dadce0; border-radius: 8px; padding: 1.5rem 2rem; }
.emulator { color: #5f6368; font-size: .85rem; }
label { display: block; margin: .4rem 0; }
input[type=text], input[type=email] { width: 18rem; padding: .3rem; }
button { padding: .5rem 1.2rem; margin-right: .5rem; border-radius: 4px; border: 1px solid #dadce0; }
button.primary { background: #1a73e8; color: white; border-color: #1a73e8; }
code { background: #f1f3f4; padding: 0 .2rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><div class=card>{body}"
        "<p class=emulator>MailMerger Google emulator: no real Google account is involved.</p>"
        "</div></body></html>"
    )


def _scope_item(scope: str, unticked: frozenset[str]) -> str:
    text = f"{escape(scope_catalog.describe(scope))} <code>{escape(scope)}</code>"
    if scope in scope_catalog.SIGN_IN:
        return f"<li>{text}</li>"
    checked = "" if scope in unticked else " checked"
    return f'<li><label><input type=checkbox name=scope value="{escape(scope)}"{checked}> {text}</label></li>'


def consent_page(
    *,
    action_url: str,
    consent_id: str,
    request: AuthorizationRequest,
    users: list[TestUser],
    unticked: frozenset[str] = frozenset(),
) -> str:
    """The account chooser and the requested scopes, each but the sign-in ones with a checkbox
    ticked by default (granular consent); an unticked scope is not granted."""
    hint = (request.login_hint or "").lower()
    choices = "".join(
        f'<label><input type=radio name=account value="{escape(user.email)}"'
        f"{' checked' if user.email == hint or (not hint and index == 0) else ''}> "
        f"{escape(user.name)} &lt;{escape(user.email)}&gt;</label>"
        for index, user in enumerate(users)
    )
    new_checked = "" if users else " checked"
    scope_items = "".join(_scope_item(scope, unticked) for scope in request.scopes)
    body = (
        "<h1>Sign in with Google</h1>"
        f"<p><b>{escape(request.client_id)}</b> wants to access your Google Account.</p>"
        f'<form method=post action="{escape(action_url)}">'
        f'<input type=hidden name=consent_id value="{escape(consent_id)}">'
        "<input type=hidden name=granular value=1>"
        f"<h2>Choose an account</h2>{choices}"
        f"<label><input type=radio name=account value=new{new_checked}> Use another account:</label>"
        f'<label>Email <input type=email name=new_email value="{escape(request.login_hint or "")}"></label>'
        "<label>Name <input type=text name=new_name></label>"
        f"<h2>This will allow {escape(request.client_id)} to:</h2><ul>{scope_items}</ul>"
        "<button class=primary type=submit name=decision value=approve>Allow</button>"
        "<button type=submit name=decision value=deny>Cancel</button>"
        "</form>"
    )
    return _page("Sign in - Google Accounts", body)


def access_blocked_page(status_code: int, error: str, description: str) -> str:
    body = (
        "<h1>Access blocked: This app's request is invalid</h1>"
        f"<p>{escape(description)}</p>"
        f"<p><b>Error {status_code}: {escape(error)}</b></p>"
    )
    return _page("Error", body)
