"""Single emails: composing, cancelling, sending now, reading them back, and the legacy client's queue.

Also the size check every message (single or campaign) passes before it enters the ledger.
"""
