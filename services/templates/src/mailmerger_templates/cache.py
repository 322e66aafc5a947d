"""A per-user Redis cache of encoded reads, invalidated explicitly by every write.

Each user has two keys:

* ``<prefix>templates:<user>:reads`` — a hash of ready-to-send JSON bodies (a page of the list, one
  template…), so a cache hit is a single ``HGET`` whose bytes go straight into the response (the
  ``HGET``s of concurrent requests share one pipeline, see :class:`_PipelinedReads`);
* ``<prefix>templates:<user>:fill-token`` — a random token that changes on every invalidation.

Invariant: once :meth:`TemplateCache.invalidate` has returned, no read returns content older than
what was committed before it was called. Invalidation replaces the token and deletes the hash in
one atomic step. A reader that misses takes the current token *before* it reads the database, and
stores what it read only if the token is still the same (atomically, in Lua). So a reader that read
the database before a writer committed — the race "a reader refills the cache with old data after
the writer invalidated it" — finds a new token and stores nothing. Tokens are random, never
counters, so an evicted or expired token key can never make an old token valid again.

Writers invalidate twice, see ``writes.py``. Reads fall back to the database when Redis fails —
the cache only ever makes reads faster, never makes them fail — and then skip the cache for a few
seconds, so an outage does not make every read wait out the client's retries first.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mailmerger_shared.batching import Batcher

log = logging.getLogger(__name__)

# KEYS: token, reads hash. ARGV: token seen before reading the database, field, body, ttl.
_FILL_IF_UNCHANGED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[4])
    return 1
end
return 0
"""
# KEYS: token, reads hash. ARGV: new token, ttl.
_INVALIDATE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: token, reads hash.
_FORGET = "return redis.call('DEL', KEYS[1], KEYS[2])"


class _PipelinedReads:
    """``HGET``s issued during one turn of the event loop, sent together in one pipeline.

    Checking a connection out of redis-py's pool and back in costs more CPU than the rest of a
    cache hit (measured: a lone ``HGET`` adds ~170 µs to a request, a pipelined one ~100 µs less);
    under load, the hits of dozens of concurrent requests share one checkout and one round trip
    (``mailmerger_shared.batching`` with ``gather_turn``: a turn's pipeline does not wait for the
    previous one). A failure reaches every request of the batch, each of which then reads the
    database.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._batches: Batcher[tuple[str, str], bytes | str | None] = Batcher(
            self._hget_all, gather_turn=True
        )

    async def hget(self, key: str, field: str) -> bytes | str | None:
        return await self._batches.submit((key, field))

    async def _hget_all(self, reads: list[tuple[str, str]]) -> list[bytes | str | None]:
        async with self._client.pipeline(transaction=False) as pipeline:
            for key, field in reads:
                pipeline.hget(key, field)  # type: ignore[unused-awaitable]  # queued, not sent
            values: list[bytes | str | None] = await pipeline.execute()
        return values


class TemplateCache:
    """Cached encoded reads of each user's templates; see the module docstring for the invariant."""

    def __init__(
        self, client: aioredis.Redis, *, key_prefix: str, ttl_seconds: int, bypass_seconds: float = 5.0
    ) -> None:
        self._client = client
        self._prefix = f"{key_prefix}templates:"
        self._ttl = ttl_seconds
        self._bypass_seconds = bypass_seconds
        self._bypass_until = float("-inf")
        self._hits = _PipelinedReads(client)
        self._fill = client.register_script(_FILL_IF_UNCHANGED)
        self._invalidate = client.register_script(_INVALIDATE)
        self._forget = client.register_script(_FORGET)

    def _keys(self, user_id: int) -> tuple[str, str]:
        return f"{self._prefix}{user_id}:fill-token", f"{self._prefix}{user_id}:reads"

    async def read(self, user_id: int, field: str, produce: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached body ``field`` of ``user_id``, or what ``produce`` returns (then cached).

        ``produce`` must read the database only after it is called (it is called after the token
        is taken) and must return the same bytes whoever calls it, since they are shared.
        """
        if time.monotonic() < self._bypass_until:
            return await produce()
        token_key, reads_key = self._keys(user_id)
        try:
            cached = await self._hits.hget(reads_key, field)
            if cached is not None:
                return _as_bytes(cached)
            token = await self._token(token_key)
        except RedisError:
            self._bypass("reading the database")
            return await produce()
        body = await produce()
        try:
            await self._fill(keys=[token_key, reads_key], args=[token, field, body, self._ttl])
        except RedisError:
            self._bypass("not caching")
        return body

    def _bypass(self, instead: str) -> None:
        self._bypass_until = time.monotonic() + self._bypass_seconds
        log.warning("template cache unavailable; %s for %g s", instead, self._bypass_seconds, exc_info=True)

    async def _token(self, token_key: str) -> bytes:
        fresh = secrets.token_hex(16).encode()
        # SET NX GET: the existing token, or None when ours was stored (one round trip either way).
        existing = await self._client.set(token_key, fresh, nx=True, get=True, ex=self._ttl)
        return fresh if existing is None else _as_bytes(existing)

    async def invalidate(self, user_id: int) -> None:
        """Drop every cached read of ``user_id`` and void fills already under way. Raises RedisError."""
        token_key, reads_key = self._keys(user_id)
        await self._invalidate(keys=[token_key, reads_key], args=[secrets.token_hex(16), self._ttl])

    async def forget(self, user_id: int) -> None:
        """Remove both keys of a deleted user; fills under way find no token and store nothing."""
        await self._forget(keys=list(self._keys(user_id)))


def _as_bytes(value: bytes | str | bool) -> bytes:
    # The shared client does not decode responses, so Redis hands back bytes; typing allows more.
    return value if isinstance(value, bytes) else str(value).encode()
