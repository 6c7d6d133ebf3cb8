"""Emulated hardware and rooms that behave like the real thing over the real protocol."""
