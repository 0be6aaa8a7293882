import errno
import os
import socket


def handler(event, context):
    """Try a TCP connection to each target ("host:port"; "runtime-api" is this task's Runtime API)
    and report "connected" or the errno name of the failure (EHOSTUNREACH: refused by a rule)."""
    results = {}
    for target in event.get("targets", []):
        address = os.environ["AWS_LAMBDA_RUNTIME_API"] if target == "runtime-api" else target
        host, port = address.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=3.0):
                results[target] = "connected"
        except OSError as exc:
            results[target] = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return results
