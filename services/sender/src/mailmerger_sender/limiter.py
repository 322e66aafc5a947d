"""A token bucket per Gmail account, shared by every sender replica through Redis.

It guards the account's quota even if the dispatcher's pacing misbehaves: a send the bucket cannot
pay for is deferred, never failed. The bucket lives in one Redis hash updated by a Lua script, so
taking a token is atomic across replicas, and the script reads Redis's clock, so replicas with
skewed clocks still agree. Redis holds no state that matters beyond a minute (the hash expires
once it would be full again).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: refill rate (tokens/s), capacity, cost.
# Returns 0 when the tokens were taken, else the milliseconds until they will be there.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait_ms = math.ceil((cost - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return wait_ms
"""


class AccountLimiter:
    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, per_minute: int, burst: int) -> None:
        self._take = redis.register_script(_TAKE)
        self._key_prefix = f"{key_prefix}sender:bucket:"
        self._rate = per_minute / 60.0
        self._burst = burst

    async def acquire(self, account_id: int) -> timedelta | None:
        """Take one send from the account's bucket: None when taken, else how long until possible.

        If Redis cannot be reached the send is allowed: the bucket is a second guard behind the
        dispatcher's pacing and Gmail's own quota, and Redis is never the only copy of anything.
        """
        try:
            wait_ms = int(
                await self._take(keys=[f"{self._key_prefix}{account_id}"], args=[self._rate, self._burst, 1])
            )
        except RedisError:
            log.warning("account limiter unavailable; sending unguarded", extra={"account_id": account_id})
            return None
        return timedelta(milliseconds=wait_ms) if wait_ms else None
