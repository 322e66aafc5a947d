"""The texts of the system's letters, and the mailroom that issues a link and posts its letter.

Names a user typed (or Google gave) appear in bodies only, never in a header (adapters/system_mail.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_auth.crypto import Sealer
from mailmerger_auth.email_links import LinkPurpose, issue_link
from mailmerger_auth.system_mail import Letter, post_letter

CONFIRM_PATH = "/v1/auth/email/confirm"
RESET_PATH = "/v1/auth/password/reset"

_NOT_YOU = (
    "If this was not you, ignore this email: nothing changes without the link, and an account whose "
    "address was never confirmed passes to the address's owner when they sign in with Google."
)


@dataclass(frozen=True)
class Mailroom:
    """Writes the system's letters in the caller's transaction (links included)."""

    sealer: Sealer
    public_url: str
    confirmation_ttl: timedelta
    reset_ttl: timedelta

    async def confirm_address(
        self, session: AsyncSession, *, user_id: int, email: str, name: str, now: datetime
    ) -> None:
        url = await self._link(
            session, LinkPurpose.CONFIRM_EMAIL, CONFIRM_PATH, user_id, now, self.confirmation_ttl
        )
        body = (
            f"Hello {name},\n\nconfirm that {email} is your address for MailMerger by opening this link "
            f"(it works once, for {_hours(self.confirmation_ttl)}):\n\n{url}\n\n{_NOT_YOU}\n"
        )
        await post_letter(
            session,
            self.sealer,
            Letter(recipient=email, subject="Confirm your email address", body=body),
            now=now,
        )

    async def reset_password(
        self, session: AsyncSession, *, user_id: int, email: str, name: str, now: datetime
    ) -> None:
        url = await self._link(session, LinkPurpose.RESET_PASSWORD, RESET_PATH, user_id, now, self.reset_ttl)
        body = (
            f"Hello {name},\n\nto choose a new MailMerger password, open this link (it works once, for "
            f"{_hours(self.reset_ttl)}; a newer request replaces it):\n\n{url}\n\n"
            "Setting a new password ends every session of the account.\n"
            "If you did not ask for this, ignore this email: your password stays as it is.\n"
        )
        await post_letter(
            session, self.sealer, Letter(recipient=email, subject="Reset your password", body=body), now=now
        )

    async def already_registered(
        self, session: AsyncSession, *, user_id: int, email: str, name: str, now: datetime
    ) -> None:
        """Someone signed up with an address that has an account: tell its owner, not the visitor."""
        url = await self._link(session, LinkPurpose.RESET_PASSWORD, RESET_PATH, user_id, now, self.reset_ttl)
        body = (
            f"Hello {name},\n\nsomeone tried to sign up for MailMerger with {email}, which already has an "
            "account. If it was you, sign in instead; if you forgot your password, choose a new one "
            f"here (the link works once, for {_hours(self.reset_ttl)}):\n\n{url}\n\n"
            "If it was not you, ignore this email: nothing has changed.\n"
        )
        await post_letter(
            session,
            self.sealer,
            Letter(recipient=email, subject="You already have an account", body=body),
            now=now,
        )

    async def taken_over(self, session: AsyncSession, *, email: str, name: str, now: datetime) -> None:
        body = (
            f"Hello {name},\n\nyou signed in to MailMerger with Google as {email}. An account had been "
            "registered with this address and a password, but the address was never confirmed, so we "
            "could not tell it was yours. Google vouches that it is, so the account is now yours alone: "
            "its password was removed, every other session ended, and the Gmail accounts connected to it "
            'were disconnected. Check its templates and campaigns; set a password with "forgot password" '
            "if you want one.\n"
        )
        await post_letter(
            session,
            self.sealer,
            Letter(recipient=email, subject="Your MailMerger account is secured", body=body),
            now=now,
        )

    async def _link(
        self,
        session: AsyncSession,
        purpose: LinkPurpose,
        path: str,
        user_id: int,
        now: datetime,
        ttl: timedelta,
    ) -> str:
        token = await issue_link(session, user_id=user_id, purpose=purpose, now=now, ttl=ttl)
        return f"{self.public_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def _hours(ttl: timedelta) -> str:
    hours = ttl.total_seconds() / 3600
    if hours < 1:
        return f"{round(ttl.total_seconds() / 60)} minutes"
    return "1 hour" if hours == 1 else f"{hours:g} hours"
