"""Device adapters for every device that turns electricity into a room's heat.

One interface, :class:`~heatgrid.agent.devices.base.HeatDevice`; one factory from the agent's
configuration, :func:`~heatgrid.agent.devices.registry.open_device`.
"""
