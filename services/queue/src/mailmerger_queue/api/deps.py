"""What the queue routes are given besides the shared ``principal`` and ``tx``: one use-case object
per area (each field of ``UseCases``, by its name) and the settings.

The use cases are built once, when the app starts, from the settings and the other services'
clients (opened by ``app``'s lifespan before ``use_cases_lifespan``), and kept in the app's state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypeAlias

from litestar.di import NamedDependency, Provide

from mailmerger_queue.adapters.auth import AuthClient
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.campaigns.use_cases import Campaigns as CampaignUseCases
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.compliance.use_cases import Compliance as ComplianceUseCases
from mailmerger_queue.dispatch.senders import Senders as SenderUseCases
from mailmerger_queue.emails.legacy import LegacyQueue
from mailmerger_queue.emails.use_cases import Emails as EmailUseCases
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.webhooks.endpoints import Webhooks as WebhookUseCases
from mailmerger_shared.web.deps import Lifespan, from_state, kept_in_state


@dataclass(frozen=True)
class UseCases:
    """Every use-case object of the queue routes, one per area."""

    emails: EmailUseCases
    campaigns: CampaignUseCases
    senders: SenderUseCases
    legacy: LegacyQueue
    compliance: ComplianceUseCases
    webhooks: WebhookUseCases

    @classmethod
    def build(
        cls, settings: QueueSettings, *, templates: TemplatesClient, storage: StorageClient, auth: AuthClient
    ) -> UseCases:
        compose = settings.compose
        unsubscribe = UnsubscribeTokens.of(settings)
        return cls(
            emails=EmailUseCases(templates, storage, compose),
            campaigns=CampaignUseCases(
                templates, storage, compose=compose, dispatch=settings.dispatch, unsubscribe=unsubscribe
            ),
            senders=SenderUseCases(per_minute_ceiling=settings.dispatch.per_minute_limit),
            legacy=LegacyQueue(templates, storage, auth, compose),
            compliance=ComplianceUseCases(unsubscribe, settings.compliance),
            webhooks=WebhookUseCases(settings.webhooks, settings.compliance),
        )


def dependencies(settings: QueueSettings) -> dict[str, Provide]:
    """Every dependency of the queue routes, by the names handlers declare them with."""

    def provide_settings() -> QueueSettings:
        return settings

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        **{area.name: from_state("use_cases", area.name) for area in fields(UseCases)},
    }


def use_cases_lifespan(settings: QueueSettings) -> Lifespan:
    """Build the use cases into ``app.state.use_cases`` once the clients they use are open."""
    return kept_in_state(
        "use_cases",
        lambda state: UseCases.build(
            settings, templates=state.templates, storage=state.storage, auth=state.auth
        ),
    )


# Declared by name in a handler's signature: ``emails: Emails``, ``settings: Settings``.
Settings: TypeAlias = NamedDependency[QueueSettings]
Emails: TypeAlias = NamedDependency[EmailUseCases]
Campaigns: TypeAlias = NamedDependency[CampaignUseCases]
Senders: TypeAlias = NamedDependency[SenderUseCases]
Legacy: TypeAlias = NamedDependency[LegacyQueue]
Compliance: TypeAlias = NamedDependency[ComplianceUseCases]
Webhooks: TypeAlias = NamedDependency[WebhookUseCases]
