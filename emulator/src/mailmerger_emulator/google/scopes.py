"""OAuth scopes the emulator knows, and which Gmail methods each one opens.

Google grants scopes under their full URL: a request for ``email``/``profile`` comes back as
``…/auth/userinfo.email``/``…/auth/userinfo.profile`` in the token response (clients that compare
scope strings must expect that).
"""

from __future__ import annotations

_AUTH = "https://www.googleapis.com/auth/"

OPENID = "openid"
USERINFO_EMAIL = _AUTH + "userinfo.email"
USERINFO_PROFILE = _AUTH + "userinfo.profile"
MAIL_FULL = "https://mail.google.com/"
GMAIL_SEND = _AUTH + "gmail.send"
GMAIL_COMPOSE = _AUTH + "gmail.compose"
GMAIL_MODIFY = _AUTH + "gmail.modify"
GMAIL_READONLY = _AUTH + "gmail.readonly"
GMAIL_METADATA = _AUTH + "gmail.metadata"
GMAIL_INSERT = _AUTH + "gmail.insert"
GMAIL_LABELS = _AUTH + "gmail.labels"
GMAIL_ADDONS_COMPOSE = _AUTH + "gmail.addons.current.action.compose"
GMAIL_SETTINGS_BASIC = _AUTH + "gmail.settings.basic"
GMAIL_SETTINGS_SHARING = _AUTH + "gmail.settings.sharing"

_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

KNOWN = frozenset(
    {
        OPENID,
        USERINFO_EMAIL,
        USERINFO_PROFILE,
        MAIL_FULL,
        GMAIL_SEND,
        GMAIL_COMPOSE,
        GMAIL_MODIFY,
        GMAIL_READONLY,
        GMAIL_METADATA,
        GMAIL_INSERT,
        GMAIL_LABELS,
        GMAIL_ADDONS_COMPOSE,
        GMAIL_SETTINGS_BASIC,
        GMAIL_SETTINGS_SHARING,
    }
)

# The scopes the users.messages.send reference lists.
SEND = frozenset({MAIL_FULL, GMAIL_MODIFY, GMAIL_COMPOSE, GMAIL_SEND, GMAIL_ADDONS_COMPOSE})
# messages.list and messages.get.
READ = frozenset({MAIL_FULL, GMAIL_MODIFY, GMAIL_READONLY, GMAIL_METADATA})
# history.list and threads.get take the same scopes as messages.get.
HISTORY = READ
# labels.list also opens to gmail.labels.
LABELS = READ | frozenset({GMAIL_LABELS})
# messages.attachments.get: bodies, so never gmail.metadata.
ATTACHMENTS = READ - frozenset({GMAIL_METADATA})
# users.getProfile: note that gmail.send alone cannot read the profile.
PROFILE = READ | frozenset({GMAIL_COMPOSE})
USERINFO = frozenset({OPENID, USERINFO_EMAIL, USERINFO_PROFILE})
# Sign-in scopes: the consent screen grants them without a checkbox (granular consent lets the
# user untick only the others, GMAIL_FACTS.md 2.5).
SIGN_IN = USERINFO

_DESCRIPTIONS = {
    OPENID: "Associate you with your personal info on Google",
    USERINFO_EMAIL: "See your primary Google Account email address",
    USERINFO_PROFILE: "See your personal info, including any personal info you've made publicly available",
    MAIL_FULL: "Read, compose, send and permanently delete all your email from Gmail",
    GMAIL_SEND: "Send email on your behalf",
    GMAIL_COMPOSE: "Manage drafts and send emails",
    GMAIL_MODIFY: "Read, compose and send emails from your Gmail account",
    GMAIL_READONLY: "View your email messages and settings",
    GMAIL_METADATA: "View your email message metadata such as labels and headers, but not the email body",
}


def normalize(requested: str) -> tuple[list[str], list[str]]:
    """The requested space-separated scopes as granted names, plus the unknown ones, in order."""
    granted: list[str] = []
    unknown: list[str] = []
    for name in requested.split():
        scope = _ALIASES.get(name, name)
        if scope not in KNOWN:
            unknown.append(name)
        elif scope not in granted:
            granted.append(scope)
    return granted, unknown


def describe(scope: str) -> str:
    return _DESCRIPTIONS.get(scope, scope)


def metadata_only_restrictions(granted: frozenset[str]) -> bool:
    """Whether Gmail applies its metadata-scope limits to this token.

    Gmail keys them on the presence of ``gmail.metadata``, even alongside broader scopes: such a
    token cannot use ``q`` nor ``format=raw|full`` (google-api-python-client #582, issue tracker
    115621456; googleworkspace/cli #104).
    """
    return GMAIL_METADATA in granted


def keep_ticked(requested: tuple[str, ...], ticked: set[str] | frozenset[str]) -> tuple[str, ...]:
    """What a granular consent grants: the sign-in scopes, and the others the user left ticked."""
    return tuple(scope for scope in requested if scope in SIGN_IN or scope in ticked)
