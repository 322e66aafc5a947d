"""Gmail's per-user send quota as a sliding minute per Google account, shared by every sender replica.

It guards the account's quota even if the dispatcher's pacing misbehaves: a send the window has no
room for is deferred, never failed. Gmail's per-user quota is a moving window ("not a set time of
day", GMAIL_FACTS 2.2), so the guard is one too: at most ``per_minute`` sends in any 60 seconds. A
token bucket cannot promise that (a full bucket plus a minute of refill is twice the limit), and
one that could would refuse most of an evenly paced minute.

The quota belongs to the Google user, not to one MailMerger connection of it: windows are keyed by
the Gmail address (``google_account``), so the same Gmail account connected by two users is
counted once. When Gmail throttles an account, it is *paused* here until the time Gmail named: the
sends of it already on their way are deferred without calling Gmail.

The window is one sorted set per account (send times as scores) updated by a Lua script, so a
check-and-take is atomic across replicas, and the script reads Redis's clock, so replicas with
skewed clocks still agree. Redis holds nothing that matters beyond a minute (the set expires); a
pause lasts at most ``MAX_PAUSE`` here, as the queue parks the account for the whole time Gmail
named (a send let through after it is refused again and pauses the account again).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mailmerger_shared.batching import Batcher

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=1)
MAX_PAUSE = timedelta(hours=1)

# KEYS: per send asked for, the account's window then its pause key (an account may repeat).
# ARGV: the limit, the window in ms, then one member unique to each send. Returns, per send, 0
# when it was counted; minus the milliseconds left of the account's pause when it is paused; else
# the milliseconds until the oldest send leaves the window (scores up to now - window are dropped,
# inclusive, so the oldest leaves at exactly oldest + window). Sends are decided in order.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local pruned = {}
local waits = {}
for i = 1, #KEYS / 2 do
  local key = KEYS[2 * i - 1]
  local paused = redis.call('PTTL', KEYS[2 * i])
  if not pruned[key] then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    pruned[key] = true
  end
  if paused > 0 then
    waits[i] = -paused
  elseif redis.call('ZCARD', key) >= limit then
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

# KEYS[1]: an account's pause key. ARGV[1]: the pause in ms. A pause only ever grows longer.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""

# Sends asked for together go to Redis in one script call (a round trip per send cost more CPU
# than the check itself). The keys share no hash slot: on Redis Cluster this needs hash tags.
MAX_BATCH = 200


def google_account(address: str) -> str:
    """The key of the Google account that sends as ``address`` (the queue's ``google_key``)."""
    return address.strip().lower()


@dataclass(frozen=True, slots=True)
class Hold:
    """A send the account cannot make now: how long until it can, and why."""

    wait: timedelta
    paused: bool  # Gmail throttled the account (else: its sliding minute is full)


class AccountLimiter:
    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, per_minute: int) -> None:
        self._take = redis.register_script(_TAKE)
        self._pause = redis.register_script(_PAUSE)
        self._window_prefix = f"{key_prefix}sender:window:"
        self._pause_prefix = f"{key_prefix}sender:paused:"
        self._limit = per_minute
        self._batches: Batcher[str, Hold | None] = Batcher(self._take_all, max_size=MAX_BATCH)

    async def acquire(self, account: str) -> Hold | None:
        """Count one send in the Google ``account``'s minute: None when counted, else why not and
        for how long.

        If Redis cannot be reached the send is allowed: the window is a second guard behind the
        dispatcher's pacing and Gmail's own quota, and Redis is never the only copy of anything.
        """
        return await self._batches.submit(account)

    async def pause(self, account: str, wait: timedelta) -> None:
        """Hold every send of the Google ``account`` for ``wait``, up to ``MAX_PAUSE`` (never
        shortening a pause)."""
        milliseconds = int(min(wait, MAX_PAUSE).total_seconds() * 1000)
        if milliseconds <= 0:
            return
        try:
            await self._pause(keys=[f"{self._pause_prefix}{account}"], args=[milliseconds])
        except RedisError:
            log.warning("account limiter unavailable; the account is not paused here", exc_info=True)

    async def _take_all(self, accounts: list[str]) -> list[Hold | None]:
        window_ms = int(WINDOW.total_seconds() * 1000)
        keys = [key for a in accounts for key in (f"{self._window_prefix}{a}", f"{self._pause_prefix}{a}")]
        try:
            waits = await self._take(
                keys=keys, args=[self._limit, window_ms, *(secrets.token_hex(8) for _ in accounts)]
            )
        except RedisError:
            log.warning("account limiter unavailable; sending unguarded", extra={"accounts": len(accounts)})
            return [None] * len(accounts)
        return [
            Hold(timedelta(milliseconds=abs(int(wait))), paused=int(wait) < 0) if int(wait) else None
            for wait in waits
        ]
