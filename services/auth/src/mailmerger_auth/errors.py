"""What auth's use cases report when they cannot do what was asked: plain exceptions, no HTTP.

Each is one of the kit's kinds (``mailmerger_shared.errors``), which the web kit turns into a
problem response at the edge; the kind fixes the status, these fix the words a client reads.
"""

from __future__ import annotations

from mailmerger_shared.errors import Conflict, Invalid, Malformed, Refused, TooManyRequests, Unauthenticated


class InvalidCredentials(Unauthenticated):
    """The one answer to a wrong email *or* a wrong password, so neither can be told apart."""

    def __init__(self) -> None:
        super().__init__("the email or the password is incorrect")


class AddressUnconfirmed(Refused):
    """The password is right, but v1 lets an account in only once its address is proven."""

    def __init__(self) -> None:
        super().__init__(
            "confirm your email address first: open the link we mailed you, or ask for a new one "
            "(POST /v1/auth/email-confirmations)",
            extra={"reason": "email_unconfirmed"},
        )


class InvalidRefreshToken(Unauthenticated):
    """A refresh token that is malformed, forged, expired, rotated, revoked or past its session."""

    def __init__(self, detail: str = "the refresh token is invalid; sign in again") -> None:
        super().__init__(detail)


class ReconnectRequired(Conflict):
    """Google refused the account's refresh token: only the user can fix this, by reconnecting."""

    def __init__(self, account_id: int) -> None:
        super().__init__(
            f"Gmail account {account_id} must be reconnected by its user",
            extra={"reason": "reconnect_required", "account_id": account_id},
        )


class InvalidLink(Invalid):
    """A mailed link that is unknown, used, expired or for something else: one answer for all;
    ``remedy`` says how to get a new one."""

    def __init__(self, remedy: str) -> None:
        super().__init__(
            f"this link has expired or was already used; {remedy}",
            title="Invalid link",
            extra={"reason": "invalid_link", "field": "token"},
        )


class TooManyAttempts(TooManyRequests):
    """Too many sign-in attempts, or requests that mail an address, in the throttle's window."""

    def __init__(self, retry_after: int, what: str) -> None:
        super().__init__(f"too many {what}; retry in {retry_after} seconds", retry_after=retry_after)


class InvalidAuthorizationState(Malformed):
    """The callback is not the answer to an authorization this browser started (or it was used)."""

    def __init__(self) -> None:
        super().__init__(
            "this sign-in with Google is unknown, expired, already used or was started in another "
            "browser; start again from the app",
            title="Invalid authorization state",
        )


class ConnectTicketSpent(Malformed):
    """A connect ticket that is unknown, expired or already used."""

    def __init__(self) -> None:
        super().__init__("the connect link has expired or was already used; start again from the app")
