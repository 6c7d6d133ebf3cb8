"""Compute jobs: SDK, sandboxed runner, checkpoints and verification."""
