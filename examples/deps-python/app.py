"""Convert a YAML request body to JSON with PyYAML's libyaml binding (a compiled wheel)."""

import base64
import json

import yaml


def handler(event, context):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    try:
        document = yaml.load(body, Loader=yaml.CSafeLoader)  # CSafeLoader: the C extension
    except yaml.YAMLError as exc:
        return {"statusCode": 400, "body": json.dumps({"error": str(exc)})}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"document": document, "libyaml": yaml.__with_libyaml__}),
    }
