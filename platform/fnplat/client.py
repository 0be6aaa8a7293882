"""HTTP client for a running fnplat (the contract in ARCHITECTURE.md / the http-api brief).

Every non-2xx answer becomes the `fnplat.errors` exception of its error type (or status),
carrying the server's message, so callers and the CLI handle one hierarchy.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from fnplat import errors
from fnplat.config import default_data_dir
from fnplat.errors import FnplatError

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
UploadProgress = Callable[[int, int], None]  # (bytes sent, total bytes)

_UPLOAD_CHUNK = 64 * 1024


class EndpointUnreachable(FnplatError):
    """No server answers at the endpoint (connection refused, DNS, timeout)."""

    status = 503
    error_type = "EndpointUnreachable"


def _error_classes() -> dict[str, type[FnplatError]]:
    by_type: dict[str, type[FnplatError]] = {}
    # Most general first: SpecError shares InvalidParameterValueException with InvalidParameter.
    general_first = (
        errors.BadRequest,
        errors.InvalidParameter,
        errors.RequestTooLarge,
        errors.RequestTimeout,
        errors.UnsupportedMediaType,
        errors.Unauthorized,
        errors.Forbidden,
        errors.NotFound,
        errors.Conflict,
        errors.TooManyRequests,
        errors.ServiceError,
        errors.ImageBuildError,
        errors.EngineError,
    )
    for cls in general_first:
        by_type.setdefault(cls.error_type, cls)
    return by_type


_BY_ERROR_TYPE = _error_classes()
_BY_STATUS: dict[int, type[FnplatError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    408: errors.RequestTimeout,
    409: errors.Conflict,
    413: errors.RequestTooLarge,
    415: errors.UnsupportedMediaType,
    429: errors.TooManyRequests,
    502: errors.EngineError,
}


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> FnplatError:
    """Pure mapping of an error response to an exception (server message kept verbatim)."""
    parsed: Any = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(body)
    message = ""
    error_type = headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or "")
        error_type = str(parsed.get("errorType") or error_type)
    if not message:
        text = body.decode("utf-8", "replace").strip()
        message = text[:500] if text else f"HTTP {status}"
    cls = _BY_ERROR_TYPE.get(error_type) or _BY_STATUS.get(status) or errors.ServiceError
    if cls is errors.TooManyRequests:
        reason = parsed.get("Reason") if isinstance(parsed, dict) else None
        return errors.TooManyRequests(message, reason=str(reason or "ConcurrentInvocationLimitExceeded"))
    return cls(message)


@dataclass(frozen=True, slots=True)
class InvokeResult:
    payload: bytes
    function_error: str | None  # "Unhandled" when the function failed
    executed_version: str | None
    request_id: str | None


class _ProgressReader:
    """A streamed request body with a length: requests sends it with a Content-Length in
    chunks (urllib3 calls read()), and every chunk sent moves the progress callback."""

    def __init__(self, data: bytes, progress: UploadProgress | None) -> None:
        self._view = memoryview(data)
        self._pos = 0
        self._progress = progress

    def __len__(self) -> int:
        return len(self._view)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_UPLOAD_CHUNK):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._view) - self._pos
        size = min(size, _UPLOAD_CHUNK)
        chunk = self._view[self._pos : self._pos + size].tobytes()
        self._pos += len(chunk)
        if self._progress is not None and chunk:
            self._progress(self._pos, len(self._view))
        return chunk


class Client:
    def __init__(
        self,
        endpoint: str,
        api_key: str | None,
        session: requests.Session | None = None,
        timeout: float = 60.0,
        verify: str | bool | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        # Passed with every request, so REQUESTS_CA_BUNDLE and certifi never take its place.
        self.verify = tls_verify() if verify is None else verify
        self._session = session or requests.Session()

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> Client:
        """Endpoint: $FNCTL_ENDPOINT, else `<data dir>/endpoint` (written by `fnctl up`), else
        the default. Key: $FNCTL_API_KEY, else `<data dir>/admin-key`."""
        directory = Path(data_dir) if data_dir is not None else default_data_dir()
        endpoint = (
            os.environ.get("FNCTL_ENDPOINT") or _read_first_line(directory / "endpoint") or DEFAULT_ENDPOINT
        )
        api_key = os.environ.get("FNCTL_API_KEY") or _read_first_line(directory / "admin-key")
        return cls(endpoint, api_key)

    # ---------------------------------------------------------------- transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        all_headers = dict(headers or {})
        if self.api_key:
            all_headers["x-api-key"] = self.api_key
        url = self.endpoint + path
        try:
            response = self._session.request(
                method,
                url,
                json=json_body,
                data=data,
                params=params,
                headers=all_headers,
                timeout=timeout or self.timeout,
                verify=self.verify,
            )
        except requests.exceptions.SSLError as exc:
            raise EndpointUnreachable(
                f"TLS with fnplat at {self.endpoint} failed: {_ssl_reason(exc)}. If its certificate is"
                " signed by a private CA (or self-signed), set FNCTL_CA_BUNDLE to that CA's PEM file"
            ) from exc
        except requests.ConnectionError as exc:
            raise EndpointUnreachable(
                f"cannot reach fnplat at {self.endpoint}: is `fnctl up` running?"
            ) from exc
        except requests.Timeout as exc:
            raise EndpointUnreachable(f"fnplat at {self.endpoint} did not answer in time") from exc
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise errors.ServiceError(f"{method} {path}: the server sent a non-JSON answer") from exc
        if not isinstance(body, dict):
            raise errors.ServiceError(f"{method} {path}: the server sent an unexpected answer")
        return body

    # ---------------------------------------------------------------- management API

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def deploy(self, zip_bytes: bytes, progress: UploadProgress | None = None) -> dict[str, Any]:
        return self._json(
            "POST",
            "/v1/functions",
            data=_ProgressReader(zip_bytes, progress),
            headers={"Content-Type": "application/zip", "Content-Length": str(len(zip_bytes))},
            timeout=max(self.timeout, 600.0),  # the server may build an image
        )

    def list_functions(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/functions").get("functions", []))

    def get_function(self, name: str, reveal_environment: bool = False) -> dict[str, Any]:
        """A function's $LATEST; environment values are "****" unless `reveal_environment`."""
        params = {"reveal_environment": "true"} if reveal_environment else None
        return self._json("GET", f"/v1/functions/{_seg(name)}", params=params)

    def delete_function(self, name: str) -> None:
        self._request("DELETE", f"/v1/functions/{_seg(name)}")

    def logs(self, name: str, limit: int = 100, request_id: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": str(limit)}
        if request_id:
            params["request_id"] = request_id
        return list(self._json("GET", f"/v1/functions/{_seg(name)}/logs", params=params).get("events", []))

    def routes(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/routes").get("routes", []))

    def create_key(self, name: str, scope: str) -> dict[str, Any]:
        return self._json("POST", "/v1/keys", json_body={"name": name, "scope": scope})

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/keys").get("keys", []))

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"/v1/keys/{_seg(key_id)}")

    def tasks(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/tasks").get("tasks", []))

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/nodes").get("nodes", []))

    # ---------------------------------------------------------------- invoke API

    def invoke(self, name: str, payload: bytes, qualifier: str | None = None) -> InvokeResult:
        params = {"Qualifier": qualifier} if qualifier else None
        response = self._request(
            "POST",
            f"/2015-03-31/functions/{_seg(name)}/invocations",
            data=payload,
            params=params,
            headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "RequestResponse"},
            timeout=max(self.timeout, 960.0),  # functions may run up to 900 s
        )
        return InvokeResult(
            payload=response.content,
            function_error=response.headers.get("X-Amz-Function-Error"),
            executed_version=response.headers.get("X-Amz-Executed-Version"),
            request_id=response.headers.get("x-amzn-RequestId"),
        )


def tls_verify() -> str | bool:
    """What verifies an https endpoint: $FNCTL_CA_BUNDLE, else the system's trust store (the
    CA file or directory OpenSSL is configured with), not the CA list bundled with requests."""
    bundle = os.environ.get("FNCTL_CA_BUNDLE")
    if bundle:
        if not Path(bundle).exists():
            raise errors.InvalidParameter(f"FNCTL_CA_BUNDLE={bundle}: no such file or directory")
        return bundle
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.capath or True


def _ssl_reason(exc: requests.exceptions.SSLError) -> str:
    """The innermost reason of a TLS failure (requests wraps it in urllib3's and its own)."""
    reason: BaseException = exc
    while True:
        inner = reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None
        inner = inner or getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    if isinstance(reason, ssl.SSLError) and reason.reason:
        return str(getattr(reason, "verify_message", None) or reason.reason)
    return str(reason)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _read_first_line(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return text.splitlines()[0].strip() if text else None
