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

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=1)

# KEYS[1]: the account's window. ARGV: the limit, the window in ms, a member unique to this call.
# Returns 0 when the send was counted, else the milliseconds until the oldest send leaves the window
# (scores up to now - window are dropped, inclusive, so the oldest leaves at exactly oldest + window).
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window + 1000)
return 0
"""


class AccountLimiter:
    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, per_minute: int) -> None:
        self._take = redis.register_script(_TAKE)
        self._key_prefix = f"{key_prefix}sender:window:"
        self._limit = per_minute

    async def acquire(self, account_id: int) -> timedelta | None:
        """Count one send in the account's minute: None when counted, else how long until possible.

        If Redis cannot be reached the send is allowed: the window is a second guard behind the
        dispatcher's pacing and Gmail's own quota, and Redis is never the only copy of anything.
        """
        window_ms = int(WINDOW.total_seconds() * 1000)
        try:
            wait_ms = int(
                await self._take(
                    keys=[f"{self._key_prefix}{account_id}"],
                    args=[self._limit, window_ms, secrets.token_hex(8)],
                )
            )
        except RedisError:
            log.warning("account limiter unavailable; sending unguarded", extra={"account_id": account_id})
            return None
        return timedelta(milliseconds=wait_ms) if wait_ms else None
