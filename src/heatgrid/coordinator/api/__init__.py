"""HTTP routers of the coordinator, one module per area."""
