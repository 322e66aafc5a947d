"""Gmail's per-user send quota as a sliding minute per account, shared by every sender replica.

It guards the account's quota even if the dispatcher's pacing misbehaves: a send the window has no
room for is deferred, never failed. Gmail's per-user quota is a moving window ("not a set time of
day", GMAIL_FACTS 2.2), so the guard is one too: at most ``per_minute`` sends in any 60 seconds. A
token bucket cannot promise that (a full bucket plus a minute of refill is twice the limit), and
one that could would refuse most of an evenly paced minute.

The window is one sorted set per account (send times as scores) updated by a Lua script, so a
check-and-take is atomic across replicas, and the script reads Redis's clock, so replicas with
skewed clocks still agree. Redis holds nothing that matters beyond a minute (the set expires).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mailmerger_sender.batching import Batcher

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=1)

# KEYS: one account window per send asked for (an account may repeat). ARGV: the limit, the window
# in ms, then one member unique to each send. Returns, per send, 0 when it was counted, else the
# milliseconds until the oldest send leaves the window (scores up to now - window are dropped,
# inclusive, so the oldest leaves at exactly oldest + window). Sends are decided in order.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local pruned = {}
local waits = {}
for i, key in ipairs(KEYS) do
  if not pruned[key] then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    pruned[key] = true
  end
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    waits[i] = math.max(1, tonumber(oldest[2]) + window - now)
  else
    redis.call('ZADD', key, now, ARGV[i + 2])
    redis.call('PEXPIRE', key, window + 1000)
    waits[i] = 0
  end
end
return waits
"""

# Sends asked for together go to Redis in one script call (a round trip per send cost more CPU
# than the check itself). The keys share no hash slot: on Redis Cluster this needs hash tags.
MAX_BATCH = 200


class AccountLimiter:
    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, per_minute: int) -> None:
        self._take = redis.register_script(_TAKE)
        self._key_prefix = f"{key_prefix}sender:window:"
        self._limit = per_minute
        self._batches: Batcher[int, timedelta | None] = Batcher(self._take_all, max_size=MAX_BATCH)

    async def acquire(self, account_id: int) -> timedelta | None:
        """Count one send in the account's minute: None when counted, else how long until possible.

        If Redis cannot be reached the send is allowed: the window is a second guard behind the
        dispatcher's pacing and Gmail's own quota, and Redis is never the only copy of anything.
        """
        return await self._batches.submit(account_id)

    async def _take_all(self, account_ids: list[int]) -> list[timedelta | None]:
        window_ms = int(WINDOW.total_seconds() * 1000)
        try:
            waits = await self._take(
                keys=[f"{self._key_prefix}{account_id}" for account_id in account_ids],
                args=[self._limit, window_ms, *(secrets.token_hex(8) for _ in account_ids)],
            )
        except RedisError:
            log.warning(
                "account limiter unavailable; sending unguarded", extra={"accounts": len(account_ids)}
            )
            return [None] * len(account_ids)
        return [timedelta(milliseconds=int(wait)) if int(wait) else None for wait in waits]
