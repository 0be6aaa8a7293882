import json
import os


def handler(event, context):
    """Lambda handler: `event` is the request (an API Gateway 2.0 event for HTTP routes)."""
    name = (event.get("pathParameters") or {}).get("name", "world")
    greeting = os.environ.get("GREETING", "Hello")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": f"{greeting}, {name}!", "requestId": context.aws_request_id}),
    }
