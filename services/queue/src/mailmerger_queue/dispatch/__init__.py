"""Quota-aware dispatch: claim due messages, pace them per account and campaign, publish SendEmail.

Also what puts a message back in line (``lifecycle``), the redispatch backstop, the wake-up
channel, and the sender accounts' limits and usage that pacing reads.
"""
