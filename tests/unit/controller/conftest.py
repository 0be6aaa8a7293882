"""Fixtures of the controller unit tests (the helpers live in controller_harness.py)."""

from controller_harness import harness

__all__ = ["harness"]
