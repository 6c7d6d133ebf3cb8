"""heatgrid: heat homes with compute.

A heater's heating element is a Bitcoin ASIC, a GPU or a CPU; the room decides how much power
may be burned, the network decides what that power computes. See ``docs/architecture.md``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
