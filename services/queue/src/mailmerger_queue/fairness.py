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
    allowance: dict[int, int],
    batch_size: int,
    last_served: Mapping[Stream, datetime] | None = None,
) -> list[Candidate]:
    """Interleave streams within each account, then accounts, within every limit.

    ``candidates`` of one stream come oldest first; an account gets at most its allowance. An
    account's streams take turns across ticks too: the one served least recently goes first (a
    paced account may send one message a tick, and by age alone a campaign launched earlier would
    keep every turn from a direct email written after it).
    """
    served = last_served or {}
    streams: dict[int, dict[int | None, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in candidates:
        streams[candidate.account_id][candidate.campaign_id].append(candidate)
    ranked: list[tuple[int, datetime, Candidate]] = []
    for account_id, by_stream in streams.items():
        queues = sorted(
            by_stream.values(),
            key=lambda q: (served.get((account_id, q[0].campaign_id), _NEVER), q[0].send_at, q[0].id),
        )
        taken = 0
        depth = 0
        while taken < allowance.get(account_id, 0) and any(depth < len(q) for q in queues):
            for queue in queues:
                if depth < len(queue) and taken < allowance[account_id]:
                    ranked.append((taken, queue[depth].send_at, queue[depth]))
                    taken += 1
            depth += 1
    ranked.sort(key=lambda item: (item[0], item[1], item[2].id))
    return [candidate for _, _, candidate in ranked[:batch_size]]
