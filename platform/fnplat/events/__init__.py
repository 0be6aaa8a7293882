"""Asynchronous events: schedule expressions, the retry decision, destination records and the
event invoke config. Every module here is pure (no I/O, no clock, no randomness of its own)."""
