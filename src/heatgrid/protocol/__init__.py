"""Versioned wire models shared by the agent and the coordinator."""
