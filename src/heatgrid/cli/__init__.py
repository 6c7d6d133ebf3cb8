"""Command-line interface: ``heatgrid ...``. The only place that wires parts together."""
