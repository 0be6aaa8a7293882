"""Where `fnctl invoke` takes its event from: --payload, --payload-file, or stdin ('-')."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

from fnplat.errors import BadRequest


def read_payload(payload: str | None, payload_file: str | None, stdin: BinaryIO) -> bytes:
    """The event as bytes, checked to be JSON so a typo fails here and not in the function.

    `--payload -` or `--payload-file -` read stdin. No payload at all is the empty event `{}`.
    """
    if payload is not None and payload_file is not None:
        raise BadRequest("give either --payload or --payload-file, not both")
    if payload == "-" or payload_file == "-":
        data = stdin.read()
        source = "stdin"
    elif payload_file is not None:
        try:
            data = Path(payload_file).read_bytes()
        except OSError as exc:
            raise BadRequest(f"cannot read payload file {payload_file}: {exc.strerror or exc}") from exc
        source = payload_file
    elif payload is not None:
        data = payload.encode("utf-8")
        source = "--payload"
    else:
        return b"{}"
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"payload from {source} is not valid JSON: {exc}") from exc
    return data
