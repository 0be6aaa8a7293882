from e2e_platform import platform

__all__ = ["platform"]
