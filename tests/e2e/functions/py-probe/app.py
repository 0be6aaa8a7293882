import socket
import threading

_listener = None


def _serve(server):
    while True:
        conn, _ = server.accept()
        conn.close()


def handler(event, context):
    """Optionally listen on a port (the thread outlives the invocation in a warm task), then try a
    TCP connection to each target and report which ones answered."""
    global _listener
    if event.get("listen") and _listener is None:
        _listener = socket.create_server(("0.0.0.0", int(event["listen"])))
        threading.Thread(target=_serve, args=(_listener,), daemon=True).start()
    results = {}
    for target in event.get("targets", []):
        host, port = target.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                results[target] = "connected"
        except OSError as exc:
            results[target] = type(exc).__name__
    return results
