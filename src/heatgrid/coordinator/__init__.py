"""The coordinator service: enrolls heaters, takes jobs, leases tasks by heat window, keeps the ledger."""
