"""The coordinator service: enrolls heaters, takes their telemetry and heat windows.

Next: jobs, tasks leased by heat window, checkpoints, the ledger.
"""
