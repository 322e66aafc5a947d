"""Which due messages go in this tick: interleaved so that no stream or account waits behind another."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    id: int
    account_id: int
    campaign_id: int | None
    send_at: datetime


Stream = tuple[int, int | None]  # (account, campaign); no campaign: the account's direct emails


def fair_pick(
    candidates: list[Candidate],
    allowance: Mapping[int, int],
    batch_size: int,
    last_served: Mapping[Stream, datetime] | None = None,
    *,
    pacer_of: Mapping[int, int] | None = None,
) -> list[Candidate]:
    """Interleave streams within each account, then accounts, within every limit.

    ``candidates`` of one stream come oldest first; an account gets at most its allowance. An
    account's streams take turns across ticks too: the one served least recently goes first (a
    paced account may send one message a tick, and by age alone a campaign launched earlier would
    keep every turn from a direct email written after it). With ``pacer_of`` (account -> the
    Google account pacing it), ``allowance`` is per Google account, shared by all its accounts.
    """
    served = last_served or {}
    group = pacer_of or {}
    streams: dict[int, dict[Stream, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in candidates:
        pacer = group.get(candidate.account_id, candidate.account_id)
        streams[pacer][(candidate.account_id, candidate.campaign_id)].append(candidate)
    ranked: list[tuple[int, datetime, Candidate]] = []
    for pacer, by_stream in streams.items():
        queues = [
            queue
            for _, queue in sorted(
                by_stream.items(),
                key=lambda item: (served.get(item[0], _NEVER), item[1][0].send_at, item[1][0].id),
            )
        ]
        limit = allowance.get(pacer, 0)
        taken = 0
        depth = 0
        while taken < limit and any(depth < len(q) for q in queues):
            for queue in queues:
                if depth < len(queue) and taken < limit:
                    ranked.append((taken, queue[depth].send_at, queue[depth]))
                    taken += 1
            depth += 1
    ranked.sort(key=lambda item: (item[0], item[1], item[2].id))
    return [candidate for _, _, candidate in ranked[:batch_size]]
