import os
import time


def handler(event, context):
    action = event.get("action") or (event.get("pathParameters") or {}).get("action")
    if action == "raise":
        raise ValueError("bad thing")
    if action == "sleep":
        time.sleep(float(event.get("seconds", 10)))
    if action == "oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if action == "exit":
        os._exit(3)
    if action == "context":
        return {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id,
            "greeting": os.environ.get("GREETING"),
            "uid": os.getuid(),
        }
    if action == "hold":
        time.sleep(float(event.get("seconds", 1)))
        return {"held": True}
    print(f"echo {action}")
    return {"echo": event}
