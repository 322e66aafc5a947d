"""Throttling per account and per client address, in Redis: sign-in attempts, and requests that
mail an address (sign-ups, confirmation and reset links), each in its own key space.

Invariants:
- Every attempt is counted *before* the password is checked, so parallel guesses cannot slip past
  the limit between a check and a count.
- Accounts are keyed by the normalised email whether or not such an account exists, so throttling
  does not reveal which emails are registered.
- Counting happens in fixed windows that start with the first attempt; a successful login forgives
  the account's attempts (not the address's: one address guessing many accounts stays limited).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import redis.asyncio as aioredis

from mailmerger_auth.errors import TooManyAttempts

# Atomically: count the attempt under each key, start its window on the first one, and report
# (count, seconds left in the window) per key.
_COUNT_ATTEMPT = """
local answer = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  table.insert(answer, count)
  table.insert(answer, redis.call('TTL', key))
end
return answer
"""


class LoginThrottle:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key_prefix: str,
        per_account: int,
        per_address: int,
        window: timedelta,
        scope: str = "login",
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}auth:{scope}:"
        self._what = "sign-in attempts" if scope == "login" else "requests for mail to this address"
        self._per_account = per_account
        self._per_address = per_address
        self._window = int(window.total_seconds())
        self._count = redis.register_script(_COUNT_ATTEMPT)

    async def attempt(self, email: str, address: str | None) -> None:
        """Count one attempt; raise TooManyAttempts when either limit is exceeded.

        ``address`` None: a signed-in user typing the password again (to delete the account, to
        change the password) counts against the account only, sharing its budget with sign-in.
        """
        limits = {self._account_key(email): self._per_account}
        if address is not None:
            limits[self._prefix + "address:" + address] = self._per_address
        counts = [int(value) for value in await self._count(keys=list(limits), args=[self._window])]
        waits = [
            max(ttl, 1)
            for limit, count, ttl in zip(limits.values(), counts[::2], counts[1::2], strict=True)
            if count > limit
        ]
        if waits:
            raise TooManyAttempts(max(waits), self._what)

    async def succeeded(self, email: str) -> None:
        await self._redis.delete(self._account_key(email))

    def _account_key(self, email: str) -> str:
        # Hashed: the key space of a shared Redis should not list our users' addresses.
        return self._prefix + "account:" + hashlib.sha256(email.encode()).hexdigest()[:32]
