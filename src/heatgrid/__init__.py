"""heatgrid: heat homes with compute.

A heater's heating element is a Bitcoin ASIC, a GPU or a CPU; the room decides how much power
may be burned, the network decides what that power computes. See ``docs/architecture.md``.
"""

import warnings

__all__ = ["__version__"]

# cryptography 51 deprecates DSA, and asyncssh (which pyasic imports, in the agent and the
# emulators) names its DSA key classes at import, printing the warning in every process that
# drives a miner. heatgrid uses no DSA key. pytest's own filter is in pyproject.toml. Remove
# both once asyncssh no longer does.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\b")

__version__ = "0.1.0"
