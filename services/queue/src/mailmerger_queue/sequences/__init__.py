"""Sequences: a campaign's follow-ups, built after each step is sent, stopped per recipient.

``domain`` (no I/O): when a follow-up is due, how it threads. ``steps``: a campaign's follow-ups,
set at creation and edited later. ``builder``: the pass that renders and schedules the next step
of every recipient whose previous step was sent. ``stops``: stopping (and delaying) a recipient,
the one entry point for the user's API and for the mailbox watcher. ``responses``: applying what
the mailbox watcher found (replies, auto-replies, bounces, the Message-IDs Gmail stored).
"""
