from gateway_harness import make_gateway

__all__ = ["make_gateway"]
