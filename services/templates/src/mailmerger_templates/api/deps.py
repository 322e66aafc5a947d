"""Dependencies of the templates API, by the names handlers declare them with.

Besides the shared ``principal`` and ``tx``, a handler is given ``templates``: the service's use
cases (:class:`~mailmerger_templates.use_cases.Templates`), built once when the app starts.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency, Provide

from mailmerger_shared.web.auth import Principal
from mailmerger_shared.web.deps import Lifespan, from_state, kept_in_state
from mailmerger_templates.settings import TemplatesSettings
from mailmerger_templates.use_cases import Templates as TemplateUseCases


def dependencies(settings: TemplatesSettings) -> dict[str, Provide]:
    """Every dependency of the templates routes, by the names handlers declare them with."""

    def provide_settings() -> TemplatesSettings:
        return settings

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        "templates": from_state("templates"),
    }


def use_cases_lifespan(settings: TemplatesSettings) -> Lifespan:
    """Build the use cases into ``app.state.templates`` once the resources they use are open
    (so it comes after the infrastructure, the engine and the cache)."""
    return kept_in_state(
        "templates",
        lambda state: TemplateUseCases(
            state.infra.sessions,
            state.template_engine,
            state.template_cache,
            max_batch_rows=settings.templates.max_batch_rows,
        ),
    )


Templates: TypeAlias = NamedDependency[TemplateUseCases]
Settings: TypeAlias = NamedDependency[TemplatesSettings]

# The hot cached reads take their user from the request (``request.user.user_id``) instead of
# declaring ``principal``: with two dependencies Litestar resolves them concurrently, in a task group
# that costs more CPU (~115 µs measured) than the whole cache hit; ``request`` is no dependency.
UserRequest: TypeAlias = Request[Principal, Any, Any]
