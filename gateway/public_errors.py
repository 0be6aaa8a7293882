"""What an error may tell the caller, and what only the platform's log may hold.

- The caller's own mistakes (`kind == "User"`, 4xx) keep the message that explains them, with
  host paths taken out: a failed image build keeps the user's build output, but its build
  context lives in the data dir, and Docker's texts name its own directories.
- Our failures (the container engine, the store, the controller, any unexpected exception) reach
  the caller as one stable sentence carrying the request id. Docker's explanation, host paths and
  tracebacks go to the platform's log under that same request id.

Only error paths come here: nothing in this module runs for a request that succeeds.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

import fnplat
from fnplat.errors import EngineError, FnplatError, InsufficientStorage, ServiceError, ServiceUnavailable
from fnplat.gateway.responses import HttpResponse, aws_error, gateway_message, service_unavailable
from fnplat.resource_errors import store_failure

log = logging.getLogger("fnplat.gateway")

ENGINE_FAILED = "The platform's container engine failed to handle the request"
INTERNAL_FAILURE = "The platform failed to handle the request"
REDACTED = "<host path>"
_STABLE = (ServiceUnavailable, InsufficientStorage)  # their messages are written for callers

# Host directories that appear in Docker's and our own texts, beyond the data dir.
_DOCKER_PATHS = ("/var/lib/docker", "/var/run/docker.sock", "/run/docker.sock", "/run/containerd")
# Where a path ends inside a message: whitespace, quotes and the punctuation around paths.
_PATH_TAIL = r"[^\s'\"`:;,()\[\]{}<>]*"


def service_message(base: str, request_id: str) -> str:
    return f"{base} (request id {request_id}); the details are in the platform's log"


class PublicErrors:
    """Turns exceptions into what the caller may see, logging what it may not."""

    def __init__(self, host_paths: Iterable[str]) -> None:
        prefixes = sorted({p.rstrip("/") for p in host_paths if p.strip("/")}, key=len, reverse=True)
        alternatives = "|".join(re.escape(p) for p in prefixes)
        # A prefix counts only as a whole path component: /srv/data matches /srv/data/x, not /srv/database.
        self._host_path = re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w.-]){_PATH_TAIL}")

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> PublicErrors:
        paths = [str(data_dir), str(data_dir.resolve()), *_DOCKER_PATHS]
        if sys.prefix != sys.base_prefix:  # a virtualenv; not /usr, which a build's output names too
            paths.append(sys.prefix)
        # The installed code (site-packages, or a source checkout) shows in tracebacks.
        paths.append(str(Path(fnplat.__file__).resolve().parent.parent))
        return cls(paths)

    def redact(self, text: str) -> str:
        """`text` with every host path replaced by REDACTED."""
        return self._host_path.sub(REDACTED, text)

    # ---- the Lambda and management APIs (REST-JSON errors) -------------------------------------

    def aws(self, exc: BaseException, request_id: str, doing: str) -> HttpResponse:
        """The REST-JSON error for `exc`, with `x-amzn-RequestId`; `doing` names the request in
        the log (e.g. "POST /v1/functions")."""
        if not isinstance(exc, FnplatError):
            # A store failure that did not pass through store.db.transaction.
            exc = mapped if (mapped := store_failure(exc)) is not None else exc
        if isinstance(exc, FnplatError) and (exc.kind == "User" or isinstance(exc, _STABLE)):
            # Caller mistakes explain themselves; a store that is down or full says so in its own
            # words (fnplat/resource_errors.py), which name no host path.
            if isinstance(exc, _STABLE):
                self._log(exc, request_id, doing)
            return aws_error(exc, message=self.redact(exc.message), request_id=request_id)
        self._log(exc, request_id, doing)
        # Status and error type stay those of the failure (an SDK's retry logic reads them).
        failure = exc if isinstance(exc, FnplatError) else ServiceError("")
        base = ENGINE_FAILED if isinstance(exc, EngineError) else INTERNAL_FAILURE
        return aws_error(failure, message=service_message(base, request_id), request_id=request_id)

    # ---- function routes (API Gateway's `{"message": ...}` responses) --------------------------

    def route(self, exc: BaseException, request_id: str, route_key: str) -> HttpResponse:
        """What API Gateway answers when the integration fails: 502 for our failures to run the
        function, 500 for anything unexpected; the request id in `apigw-requestid`."""
        self._log(exc, request_id, f"route {route_key}")
        if isinstance(exc, ServiceUnavailable):  # shutting down, or the engine is away: retry
            return with_request_id(service_unavailable(exc.retry_after_s), "apigw-requestid", request_id)
        status = 502 if isinstance(exc, FnplatError) else 500
        message = "Internal Server Error"
        return with_request_id(gateway_message(status, message), "apigw-requestid", request_id)

    def _log(self, exc: BaseException, request_id: str, doing: str) -> None:
        if isinstance(exc, FnplatError):
            log.error("request %s: %s failed: %s: %s", request_id, doing, type(exc).__name__, exc.message)
        else:
            log.error("request %s: %s failed unexpectedly", request_id, doing, exc_info=exc)


def with_request_id(response: HttpResponse, header: str, request_id: str) -> HttpResponse:
    return HttpResponse(response.status, (*response.headers, (header, request_id)), response.body)


ERRORS = web.AppKey("errors", PublicErrors)
