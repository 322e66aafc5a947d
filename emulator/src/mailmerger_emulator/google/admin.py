"""The operator and test API under ``/_emulator`` (never under a Google path).

Users, their account state and quota overrides; tokens minted without the browser dance; faults;
reset; incoming mail (a reply, an auto-reply, a delivery-status notification or any raw message
delivered into a mailbox, now or later on the emulator's clock); the scopes a user unticks on the
consent page; a password change that ends refresh tokens; and inspection of every message
(JSON and a small HTML mailbox). Mounted only in
development (``MM_ENVIRONMENT``, the emulator's ``deployment`` setting): it has no credential of its
own, and anyone who reached it could mint tokens for any user and read every mailbox.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post, put
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath

from mailmerger_emulator.google import scopes as scope_catalog
from mailmerger_emulator.google.accounts import AccountExists, AccountStatus, TestUser, looks_like_email
from mailmerger_emulator.google.faults import ActiveFault, FaultRule
from mailmerger_emulator.google.http import html_response, json_response, query
from mailmerger_emulator.google.incoming import IncomingKind, compose
from mailmerger_emulator.google.inspection import message_detail
from mailmerger_emulator.google.mailbox import StoredMessage, rfc_message_id_key
from mailmerger_emulator.google.mailbox_page import mailbox_list_page, message_page
from mailmerger_emulator.google.mime import decode_header_value, decode_raw
from mailmerger_emulator.google.oauth_tokens import token_response
from mailmerger_emulator.google.state import EmulatorState
from mailmerger_emulator.google.tokens import AuthorizationRequest

T = TypeVar("T")
Limit = Annotated[int, msgspec.Meta(gt=0)]


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    name: str | None = None


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    """A partial update; ``null`` for a quota field goes back to the settings' default."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    status: AccountStatus | msgspec.UnsetType = msgspec.UNSET
    units_per_minute: Limit | msgspec.UnsetType | None = msgspec.UNSET
    daily_send_cap: Limit | msgspec.UnsetType | None = msgspec.UNSET


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    scopes: list[str]
    client_id: str | None = None
    offline: bool = True


class IncomingMail(msgspec.Struct, forbid_unknown_fields=True):
    """Mail arriving in ``user``'s mailbox (default: the owner of ``message_id``).

    ``kind`` ``reply``/``auto_reply``/``bounce``/``delay`` answers the sent message ``message_id``
    (a Gmail id) from ``sender`` (default: its first recipient) or, for a delivery report, about
    ``recipient`` (the same default); ``raw`` delivers a whole message (base64url, as Gmail's
    ``raw``), threaded by its references or into ``thread_id``. ``delay_seconds`` schedules it on
    the emulator's clock instead of now.
    """

    kind: Literal["reply", "auto_reply", "bounce", "delay", "raw"]
    user: str | None = None
    message_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    text: str | None = None
    raw: str | None = None
    thread_id: str | None = None
    delay_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0


class ConsentChoice(msgspec.Struct, forbid_unknown_fields=True):
    """The scopes ``email`` unticks on every later consent (auto-approved or shown)."""

    email: str
    untick: list[str]


def _decode(body: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ValidationException(str(error)) from None


def _decode_rules(body: bytes) -> list[FaultRule]:
    """One fault rule, or a list of them."""
    rules: FaultRule | list[FaultRule] = _decode(body, FaultRule | list[FaultRule])  # type: ignore[arg-type]
    return rules if isinstance(rules, list) else [rules]


def _user_json(user: TestUser) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "sub": user.sub,
        "status": user.status.value,
        "units_per_minute": user.units_per_minute,
        "daily_send_cap": user.daily_send_cap,
    }


def _fault_json(fault: ActiveFault) -> dict[str, Any]:
    return {"id": fault.id, "remaining": fault.remaining, **msgspec.to_builtins(fault.rule)}


def admin_router(state: EmulatorState) -> Router:
    base_url = state.settings.browser_base_url  # the mailbox pages are for a browser

    def user_or_404(email: str) -> TestUser:
        user = state.directory.get(email)
        if user is None:
            raise NotFoundException(f"no test user {email}")
        return user

    @post("/reset", status_code=200, sync_to_thread=False)
    def reset() -> Response[bytes]:
        state.reset()
        return json_response({"reset": True})

    @get("/users", sync_to_thread=False)
    def list_users() -> Response[bytes]:
        return json_response({"users": [_user_json(user) for user in state.directory.all()]})

    @post("/users", status_code=201)
    async def create_user(request: Request[Any, Any, Any]) -> Response[bytes]:
        new = _decode(await request.body(), NewUser)
        if not looks_like_email(new.email):
            raise ValidationException(f"not an email address: {new.email}")
        try:
            user = state.directory.create(new.email, new.name)
        except AccountExists:
            return json_response({"detail": f"{new.email} already exists"}, 409)
        return json_response(_user_json(user), 201)

    @patch("/users/{email:str}")
    async def change_user(request: Request[Any, Any, Any], email: FromPath[str]) -> Response[bytes]:
        user = user_or_404(email)
        change = _decode(await request.body(), UserChange)
        for field in msgspec.structs.fields(UserChange):
            value = getattr(change, field.name)
            if value is not msgspec.UNSET:
                setattr(user, field.name, value)
        return json_response(_user_json(user))

    @post("/tokens", status_code=200)
    async def mint_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Tokens for a user without the browser: a consent approved and redeemed in one step."""
        wanted = _decode(await request.body(), TokenRequest)
        client = state.clients.get(wanted.client_id) if wanted.client_id else state.settings.clients[0]
        granted, unknown = scope_catalog.normalize(" ".join(wanted.scopes))
        if client is None or unknown or not granted or not looks_like_email(wanted.email):
            raise ValidationException("unknown client, unknown scopes or an invalid email")
        user = state.directory.get_or_create(wanted.email)
        auth_request = AuthorizationRequest(
            client_id=client.client_id,
            redirect_uri=client.redirect_uris[0],
            scopes=tuple(granted),
            state=None,
            nonce=None,
            code_challenge=None,
            code_challenge_method="",
            offline=wanted.offline,
            prompt=frozenset({"consent"}),
            login_hint=user.email,
            include_granted_scopes=False,
        )
        code, _ = state.tokens.issue_code(auth_request, user.email)
        issued = state.tokens.redeem_code(
            code, client_id=client.client_id, redirect_uri=auth_request.redirect_uri, verifier=None
        )
        return token_response(state, issued.access, issued.refresh_token, None)

    @post("/faults", status_code=201)
    async def add_faults(request: Request[Any, Any, Any]) -> Response[bytes]:
        added = [state.faults.add(rule) for rule in _decode_rules(await request.body())]
        return json_response({"faults": [_fault_json(fault) for fault in added]}, 201)

    @get("/faults", sync_to_thread=False)
    def list_faults() -> Response[bytes]:
        return json_response({"faults": [_fault_json(fault) for fault in state.faults.active()]})

    @delete("/faults", status_code=200, sync_to_thread=False)
    def clear_faults() -> Response[bytes]:
        state.faults.clear()
        return json_response({"faults": []})

    @post("/incoming", status_code=201)
    async def incoming(request: Request[Any, Any, Any]) -> Response[bytes]:
        mail = _decode(await request.body(), IncomingMail)
        original: StoredMessage | None = None
        if mail.message_id is not None:
            original = state.post_office.find(mail.message_id)
            if original is None:
                raise NotFoundException(f"no message {mail.message_id}")
        owner = (mail.user or (original.owner if original else "")).lower()
        if not looks_like_email(owner):
            raise ValidationException("give user, or message_id of a message in the user's mailbox")
        now = state.clock()
        at = now + mail.delay_seconds
        if mail.kind == "raw":
            if not mail.raw:
                raise ValidationException("kind raw needs raw (base64url)")
            raw, thread_id = decode_raw(mail.raw), mail.thread_id
        else:
            if original is None or original.owner != owner:
                raise ValidationException(f"kind {mail.kind} needs message_id of a message {owner} sent")
            kind = IncomingKind(mail.kind)
            default_party = next(iter((*original.envelope.to, *original.envelope.cc)), "someone@example.com")
            party = mail.recipient if kind in (IncomingKind.BOUNCE, IncomingKind.DELAY) else mail.sender
            raw = compose(kind, original, party or default_party, mail.text, at)
            thread_id = None if kind is IncomingKind.REPLY else original.thread_id
        if mail.delay_seconds:
            state.inbound.schedule(owner, raw, thread_id, at)
            return json_response({"scheduled": True, "at": at, "pending": state.inbound.pending()}, 202)
        stored = state.inbound.deliver_now(owner, raw, thread_id)
        return json_response(message_detail(stored), 201)

    @get("/incoming", sync_to_thread=False)
    def pending_incoming() -> Response[bytes]:
        state.inbound.deliver_due()
        return json_response({"pending": state.inbound.pending()})

    @put("/consent", status_code=200)
    async def consent_choice(request: Request[Any, Any, Any]) -> Response[bytes]:
        choice = _decode(await request.body(), ConsentChoice)
        granted, unknown = scope_catalog.normalize(" ".join(choice.untick))
        if unknown or not looks_like_email(choice.email):
            raise ValidationException("unknown scopes or an invalid email")
        email = choice.email.lower()
        if granted:
            state.unticked_scopes[email] = frozenset(granted)
        else:
            state.unticked_scopes.pop(email, None)
        return json_response({"email": email, "untick": sorted(granted)})

    @post("/users/{email:str}/password-change", status_code=200, sync_to_thread=False)
    def password_change(email: FromPath[str]) -> Response[bytes]:
        user = user_or_404(email)
        return json_response({"ended_refresh_tokens": state.tokens.password_changed(user.email)})

    @get("/messages")
    async def list_messages(request: Request[Any, Any, Any]) -> Response[bytes]:
        state.inbound.deliver_due()
        params = query(request)
        messages = state.post_office.messages(params["user"].lower() if params.get("user") else None)
        if params.get("label"):
            messages = [m for m in messages if params["label"].upper() in m.label_ids]
        if params.get("rfc822msgid"):
            key = rfc_message_id_key(params["rfc822msgid"])
            messages = [m for m in messages if rfc_message_id_key(m.envelope.message_id) == key]
        return json_response({"messages": [message_detail(message) for message in messages]})

    @get("/messages/counts")
    async def message_counts(request: Request[Any, Any, Any]) -> Response[bytes]:
        state.inbound.deliver_due()
        user = query(request).get("user")
        counts = state.post_office.copies_by_rfc_message_id(user.lower() if user else None)
        return json_response({"counts": counts, "total": sum(counts.values())})

    @get("/messages/total", sync_to_thread=False)
    def message_total() -> Response[bytes]:
        # For polling progress: /messages/counts builds a map of every Message-ID on each call.
        state.inbound.deliver_due()
        return json_response({"total": state.post_office.total()})

    @delete("/messages", status_code=200, sync_to_thread=False)
    def clear_messages() -> Response[bytes]:
        # Users, tokens and quotas stay: long benchmarks empty the mailboxes between rounds, so the
        # emulator's memory does not grow by every message body ever sent.
        state.post_office.clear()
        return json_response({"total": 0})

    @get("/messages/{message_id:str}", sync_to_thread=False)
    def get_message(message_id: FromPath[str]) -> Response[bytes]:
        state.inbound.deliver_due()
        message = state.post_office.find(message_id)
        if message is None:
            raise NotFoundException(f"no message {message_id}")
        return json_response(message_detail(message))

    @get("/mailbox")
    async def mailbox(request: Request[Any, Any, Any]) -> Response[str]:
        state.inbound.deliver_due()
        user = query(request).get("user") or None
        messages = state.post_office.messages(user.lower() if user else None)
        return html_response(mailbox_list_page(base_url, messages, state.directory.all(), user))

    @get("/mailbox/{message_id:str}", sync_to_thread=False)
    def mailbox_message(message_id: FromPath[str]) -> Response[str]:
        message = state.post_office.find(message_id)
        if message is None:
            raise NotFoundException(f"no message {message_id}")
        headers = [(name, decode_header_value(value)) for name, value in message.envelope.headers]
        return html_response(message_page(base_url, message, headers))

    return Router(
        path="/_emulator",
        route_handlers=[
            reset,
            list_users,
            create_user,
            change_user,
            mint_tokens,
            add_faults,
            list_faults,
            clear_faults,
            incoming,
            pending_incoming,
            consent_choice,
            password_change,
            list_messages,
            message_counts,
            message_total,
            clear_messages,
            get_message,
            mailbox,
            mailbox_message,
        ],
    )
