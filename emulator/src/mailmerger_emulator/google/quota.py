"""Per-user Gmail quotas: API units per minute and the account's rolling-24-hour sending cap.

Both are sliding windows over the injected clock (Google: a moving window, "not a set time of
day"). Each charge or check drops what left its window first, so the work per call is amortized
O(1) and the memory per user is bounded by the limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

# Units per call, from the Gmail API quota reference (GMAIL_FACTS.md 2.2, the legacy table:
# history.list 2, messages.get 5; threads.get 10 there).
METHOD_UNITS = {
    "messages.send": 100,
    "messages.list": 5,
    "messages.get": 5,
    "messages.attachments.get": 5,
    "threads.get": 10,
    "history.list": 2,
    "labels.list": 1,
    "getProfile": 1,
}
MINUTE = 60.0
DAY = 86_400.0


class _UnitWindow:
    __slots__ = ("charges", "used")

    def __init__(self) -> None:
        self.charges: deque[tuple[float, int]] = deque()
        self.used = 0


class QuotaLedger:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._units: dict[str, _UnitWindow] = {}
        self._sends: dict[str, deque[float]] = {}

    def clear(self) -> None:
        self._units.clear()
        self._sends.clear()

    def charge(self, user: str, units: int, limit: int) -> bool:
        """Spend ``units`` of the user's minute if they fit under ``limit``; a refused call costs nothing."""
        now = self._clock()
        window = self._units.get(user)
        if window is None:
            window = self._units[user] = _UnitWindow()
        charges = window.charges
        while charges and charges[0][0] <= now - MINUTE:
            window.used -= charges.popleft()[1]
        if window.used + units > limit:
            return False
        charges.append((now, units))
        window.used += units
        return True

    def sending_blocked_until(self, user: str, cap: int) -> float | None:
        """When the user may send again, or None if one more message fits in the last 24 hours."""
        sends = self._sends.get(user)
        if not sends:
            return None
        now = self._clock()
        while sends and sends[0] <= now - DAY:
            sends.popleft()
        if len(sends) < cap:
            return None
        # The cap frees one slot when the oldest of the last ``cap`` sends leaves the window.
        return sends[len(sends) - cap] + DAY

    def record_send(self, user: str) -> None:
        sends = self._sends.get(user)
        if sends is None:
            sends = self._sends[user] = deque()
        sends.append(self._clock())
