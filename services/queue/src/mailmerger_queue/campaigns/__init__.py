"""Campaigns: create and steer them, build the recipient list from CSV, test a row, report progress.

Reports, streamed results and the ETA read the ledger; only ``service`` and ``build`` write.
"""
