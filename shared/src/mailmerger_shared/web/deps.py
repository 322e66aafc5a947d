"""Request-scoped dependencies shared by every service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
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
