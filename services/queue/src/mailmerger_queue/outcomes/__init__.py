"""What comes back to the queue: the sender's delivery outcomes and the account events of auth and
storage, applied to the ledger idempotently (each consumer's handler lives here; ``worker`` wires them).
"""
