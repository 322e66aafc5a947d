"""The emulator's whole in-memory state, owned by one app instance (one process)."""

from __future__ import annotations

from collections.abc import Callable

from mailmerger_emulator.google.accounts import Directory
from mailmerger_emulator.google.faults import FaultPlan
from mailmerger_emulator.google.incoming import Inbound
from mailmerger_emulator.google.mailbox import PostOffice
from mailmerger_emulator.google.quota import QuotaLedger
from mailmerger_emulator.google.scopes import GMAIL_SEND
from mailmerger_emulator.google.settings import GoogleEmulatorSettings, OAuthClient
from mailmerger_emulator.google.signing import IdTokenSigner
from mailmerger_emulator.google.tokens import TokenStore

Clock = Callable[[], float]


class EmulatorState:
    """Users, OAuth grants, mailboxes, quota windows and faults.

    Registered clients and the signing key come from configuration and survive ``reset``; message
    ids keep increasing across resets so an id seen before a reset never names another message.
    """

    def __init__(self, settings: GoogleEmulatorSettings, clock: Clock, signer: IdTokenSigner) -> None:
        self.settings = settings
        self.clock = clock
        self.signer = signer
        self.clients: dict[str, OAuthClient] = {client.client_id: client for client in settings.clients}
        self.directory = Directory()
        self.tokens = self._token_store()
        self.post_office = PostOffice(clock)
        self.quota = QuotaLedger(clock)
        self.faults = FaultPlan()
        self.inbound = Inbound(self.post_office, clock)
        # Scopes each user unticks on the consent page (granular consent), for auto-approval.
        self.unticked_scopes: dict[str, frozenset[str]] = {}
        self._seed_system_account()

    def reset(self) -> None:
        self.directory = Directory()
        self.tokens = self._token_store()
        self.post_office.clear()
        self.quota.clear()
        self.faults.clear()
        self.inbound.clear()
        self.unticked_scopes.clear()
        self._seed_system_account()

    def _token_store(self) -> TokenStore:
        testing = frozenset(
            client.client_id for client in self.settings.clients if client.publishing_status == "testing"
        )
        return TokenStore(self.clock, self.settings.access_token_ttl_seconds, testing)

    def _seed_system_account(self) -> None:
        if not self.settings.clients:
            return
        email = self.settings.system_mail_address
        self.directory.get_or_create(email, "MailMerger")
        self.tokens.seed_refresh(
            self.settings.system_mail_refresh_token,
            client_id=self.settings.clients[0].client_id,
            user_email=email,
            scopes=(GMAIL_SEND,),
        )
