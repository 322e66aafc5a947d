"""Request-scoped dependencies shared by every service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_shared.web.auth import Principal
from mailmerger_shared.web.problems import Conflict


async def provide_transaction(state: State) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the handler returns, rolled back if it raises.

    Committing happens before the response is sent, so a 2xx always means the change is durable.
    """
    sessions = state.infra.sessions
    async with sessions() as session:
        try:
            async with session.begin():
                yield session
        except IntegrityError as exc:
            raise Conflict("the change conflicts with existing data") from exc


Lifespan: TypeAlias = Callable[[Any], contextlib.AbstractAsyncContextManager[None]]


def kept_in_state(name: str, build: Callable[[State], object]) -> Lifespan:
    """A lifespan that keeps ``build(app.state)`` as ``app.state.<name>`` while the app runs.

    For a service's use-case objects: built once, after the lifespans that open what they use
    (the database, clients, caches), so it goes after those in ``create_app``'s list.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        setattr(app.state, name, build(app.state))
        try:
            yield
        finally:
            delattr(app.state, name)

    return lifespan


def from_state(name: str, attribute: str | None = None) -> Provide:
    """The dependency ``app.state.<name>`` (or its ``attribute``) of the request's app.

    Read from the request's app, not from a ``state`` parameter: Litestar hands a dependency that
    asks for ``state`` a copy made per request, which costs on the hot paths.
    """

    def provide(request: Request[Any, Any, Any]) -> Any:
        kept = getattr(request.app.state, name)
        return kept if attribute is None else getattr(kept, attribute)

    return Provide(provide, sync_to_thread=False)


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.user
    return principal


# Handlers declare what they need by these names: ``principal: CurrentUser, tx: Transaction``.
CurrentUser: TypeAlias = NamedDependency[Principal]
Transaction: TypeAlias = NamedDependency[AsyncSession]

# Ids are PostgreSQL bigints: a larger one names no row, and the driver would refuse it (as a 500).
# The bound is lower still: the largest integer a JSON client (JavaScript's numbers) holds exactly,
# which is also exact as a float, so validators of the OpenAPI document compare against it exactly
# (2**63 - 1 is not: as a float it rounds up, and ids past it passed for valid).
MAX_RESOURCE_ID = 2**53 - 1
ResourceId: TypeAlias = Annotated[int, PathParameter(ge=1, le=MAX_RESOURCE_ID)]
ResourceIdFilter: TypeAlias = Annotated[int | None, QueryParameter(ge=1, le=MAX_RESOURCE_ID)]
