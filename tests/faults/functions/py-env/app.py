import os


def handler(event, context):
    """The values of the environment variables the event names, as the task sees them."""
    return {name: os.environ.get(name) for name in event.get("names", [])}
