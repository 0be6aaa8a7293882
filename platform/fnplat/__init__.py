"""fnplat: a self-hosted, Lambda-compatible Function-as-a-Service platform on Docker."""

__version__ = "0.1.0"
