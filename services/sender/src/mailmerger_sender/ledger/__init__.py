"""The idempotency ledger: one row per email, claimed before any Gmail call.

- ``states``: the row, its states and the one rule for moving between them.
- ``settlement``: how a delivery ends (a plain value: state, columns, events), and the event a
  final row stands for.
- ``statements``: the SQL that claims rows and writes settlements with their outbox rows.
- ``writer``: ``LedgerWriter``, what delivery calls; it groups concurrent writes into batches
  (``mailmerger_shared.batching``, which the account limiter uses too), one statement per batch.

Invariants:
- Only one command holds a message at a time: a claim is an INSERT, or an UPDATE of a
  ``deferred`` row, decided by PostgreSQL's ON CONFLICT row lock; two replicas claiming the same
  message serialize there and exactly one wins.
- A claim is committed before the Gmail call it covers, so a crash mid-call leaves ``sending``
  behind, never silence.
- Every later change is a compare-and-set on (``command_id``, state): a command that lost its claim
  (another replica reconciled or took it over) changes nothing.
- A final row (``sent``, ``failed``, ``unconfirmed``) never changes again within its generation,
  and its outcome event can be rebuilt from it. A ``failed`` or ``unconfirmed`` row is claimed
  again only by a command of a newer generation: the user's explicit resend, never a redelivery,
  a re-dispatch or a new attempt. A ``sent`` row is never claimed again.
"""
