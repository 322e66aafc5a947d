"""The mailbox watcher: replies, auto-replies and bounces found in the threads of messages we sent.

Accounts that granted ``gmail.metadata`` (or a search scope) get their mailbox read with
``history.list`` from a stored historyId; what arrived in one of our threads is classified
(``classify``) and published as ``ResponseReceived``, staged in the outbox in the transaction that
advances the stored historyId (``sync``). ``mailboxes`` enrolls and leases the mailboxes, ``run``
drives passes in every sender replica.
"""
