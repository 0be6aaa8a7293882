"""`fnctl logs --follow`: poll the logs endpoint and print each event once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Event = Mapping[str, Any]


@dataclass
class LogCursor:
    """What has been printed: the newest timestamp and the events seen at exactly that time."""

    last_timestamp: str = ""
    seen_at_last: set[tuple[Any, ...]] = field(default_factory=set)


def _identity(event: Event) -> tuple[Any, ...]:
    return (event.get("timestamp"), event.get("request_id"), event.get("message"))


def fresh_events(events: Sequence[Event], cursor: LogCursor) -> list[Event]:
    """Events (oldest first) not printed yet; advances the cursor. ISO 8601 UTC sorts as text."""
    fresh: list[Event] = []
    for event in events:
        timestamp = str(event.get("timestamp", ""))
        if timestamp < cursor.last_timestamp:
            continue
        identity = _identity(event)
        if timestamp == cursor.last_timestamp and identity in cursor.seen_at_last:
            continue
        if timestamp > cursor.last_timestamp:
            cursor.last_timestamp = timestamp
            cursor.seen_at_last = set()
        cursor.seen_at_last.add(identity)
        fresh.append(event)
    return fresh


def follow(
    fetch: Callable[[], Sequence[Event]],
    emit: Callable[[Event], None],
    stop: threading.Event,
    interval_s: float = 1.0,
) -> None:
    """Fetch and emit new events until `stop` is set (Ctrl-C ends the CLI's loop)."""
    cursor = LogCursor()
    while True:
        for event in fresh_events(fetch(), cursor):
            emit(event)
        if stop.wait(interval_s):
            return
