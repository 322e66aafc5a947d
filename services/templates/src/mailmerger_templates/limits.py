"""How much a template may be, and how much one render may cost.

Templates come from users, so every render runs against a budget: a wall-clock deadline and a number
of loop iterations shared by all parts of one row. The budget is checked where work can pile up
without bound — each loop iteration, each call the template makes, each chunk of output — so it fires
even when a loop prints nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from time import perf_counter
from typing import TypeVar

import msgspec

from mailmerger_templates.errors import RenderLimitExceeded

T = TypeVar("T")

# Numbers in a mail merge are prices, counts and dates; 128 bits (38 digits) is far beyond them, and
# small enough that arithmetic on capped numbers stays instantaneous.
MAX_INTEGER_BITS = 128


class RenderLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The bounds every template and every render stays within; all must be positive.

    ``max_body_chars`` also caps any single value a template builds (``~``, ``+``, ``*``), because
    nothing bigger than the largest allowed output can be useful.
    """

    max_source_bytes: int = 256 * 1024  # all parts together, UTF-8 encoded
    max_subject_chars: int = 998  # RFC 5322's line length limit
    max_body_chars: int = 1_000_000  # per body part (html, text)
    max_render_seconds: float = 0.1  # per row, all parts together
    max_loop_iterations: int = 10_000  # per row, all loops of all parts together
    max_range: int = 10_000  # numbers one range() may produce
    max_nesting: int = 32  # depth of the template's syntax tree

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"RenderLimits.{name} must be positive")


class RenderBudget:
    """What one row's render may still spend: a deadline and a count of loop iterations."""

    __slots__ = ("_deadline", "_iterations_left", "_limits")

    def __init__(self, limits: RenderLimits) -> None:
        self._limits = limits
        self._deadline = perf_counter() + limits.max_render_seconds
        self._iterations_left = limits.max_loop_iterations

    def check_clock(self) -> None:
        """Stop the render once its deadline has passed."""
        if perf_counter() > self._deadline:
            raise RenderLimitExceeded(
                f"rendering took longer than {self._limits.max_render_seconds * 1000:g} ms;"
                " loop over fewer items or simplify the template"
            )

    def metered(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, charging one iteration and checking the clock for each."""
        for item in items:
            self._iterations_left -= 1
            if self._iterations_left < 0:
                raise RenderLimitExceeded(
                    f"the template's loops ran more than {self._limits.max_loop_iterations} times"
                    " in total for one row; loop over fewer items"
                )
            self.check_clock()
            yield item
