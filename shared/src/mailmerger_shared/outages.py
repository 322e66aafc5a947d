"""Telling an outage of a backing service apart from a bug.

An HTTP request that meets an outage answers 503 naming the dependency (``web.problems``); a
consumed message that meets one is retried after a pause instead of spending its delivery limit
in milliseconds (``broker.consumer``).
"""

from __future__ import annotations


def unavailable_dependency(exc: BaseException) -> str | None:
    """Name the dependency an exception says is unreachable, or None if it is a real bug."""
    import aiormq.exceptions
    import asyncpg
    import redis.exceptions
    import sqlalchemy.exc

    from mailmerger_shared.broker.publisher import PublishFailed

    for cause in error_chain(exc):
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return "database"
        if isinstance(
            cause,
            asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.ConnectionFailureError
            | asyncpg.exceptions.AdminShutdownError,
        ):
            return "database"
        if isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return "database"
        if isinstance(cause, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return "redis"
        if isinstance(cause, aiormq.exceptions.AMQPConnectionError | PublishFailed):
            return "broker"
        if isinstance(cause, ConnectionRefusedError):
            return "a backing service"
    return None


def error_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
