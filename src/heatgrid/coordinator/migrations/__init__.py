"""Alembic migrations of the coordinator database (run by ``heatgrid db upgrade``)."""
