"""The domain model: plain frozen dataclasses shared by every layer.

Nothing here imports SQLAlchemy, aiohttp or docker. The store maps rows to these types, the
gateway and CLI map JSON to and from them, the controller compiles them to task definitions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from fnplat.events.invoke_config import EventInvokeConfig
from fnplat.events.schedule_spec import ScheduleSpec
from fnplat.http_config import DEFAULT_HTTP_CONFIG, NO_OVERRIDES, HttpConfig, RouteOverrides

RUNTIMES: tuple[str, ...] = ("python3.11", "nodejs18.x", "provided", "image")
Runtime = Literal["python3.11", "nodejs18.x", "provided", "image"]
AuthMode = Literal["api_key", "none"]
KeyScope = Literal["admin", "invoke"]
# function.yaml `network`: "default" reaches the internet (not the host, link-local or private
# ranges); "none" reaches nothing but its Runtime API.
NetworkMode = Literal["default", "none"]
NETWORK_MODES: tuple[str, ...] = ("default", "none")

LATEST = "$LATEST"

# Lambda's own rule for a function name (without ARN forms): 1-64 of letters, digits, - and _.
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

MEMORY_MIN_MB, MEMORY_MAX_MB, MEMORY_DEFAULT_MB = 128, 10240, 128
TIMEOUT_MIN_S, TIMEOUT_MAX_S, TIMEOUT_DEFAULT_S = 1, 900, 3

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # 6 MB, as Lambda (request and response)
RESPONSE_PAYLOAD_LIMIT = 6 * 1024 * 1024 + 100  # RIE's MaxPayloadSize
ARTIFACT_ZIPPED_LIMIT = 50 * 1024 * 1024
ARTIFACT_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Entries of a zip, directories included. Lambda has no such limit, but every entry costs memory
# when the zip is read and an inode when it is unpacked; vendored trees (numpy + pandas, the AWS
# SDK v3 clients) stay well under it.
ARTIFACT_MAX_ENTRIES = 20_000


def frozen_map(values: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route of a function: `GET /hello/{name}`, `ANY /files/{proxy+}` or `$default`."""

    method: str  # upper-case HTTP method or "ANY"; "ANY" for $default
    path: str  # starts with "/", or the literal "$default"
    http: RouteOverrides = NO_OVERRIDES  # the route's own auth / cors / payload, if any

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A validated function.yaml."""

    name: str
    runtime: Runtime
    handler: str
    memory: int = MEMORY_DEFAULT_MB
    timeout: int = TIMEOUT_DEFAULT_S
    environment: Mapping[str, str] = field(default_factory=frozen_map)
    routes: tuple[RouteSpec, ...] = ()
    # What today's route table stores (fnplat.http_config.stored_auth_mode): `none` only when every
    # route is open. The full configuration, per route, is `http` + each route's overrides.
    auth: AuthMode = "api_key"
    # `async:`; None when function.yaml has no `async:` key (the stored config, if any, stands).
    event_invoke: EventInvokeConfig | None = None
    schedules: tuple[ScheduleSpec, ...] = ()
    network: NetworkMode = "default"
    http: HttpConfig = DEFAULT_HTTP_CONFIG  # function-level auth, cors and payload

    def route_http(self, route: RouteSpec) -> HttpConfig:
        """The effective auth, CORS and payload format of one of this function's routes."""
        return route.http.apply(self.http)


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """One immutable version record: code plus configuration. Each deploy creates one."""

    function_name: str
    version: int  # 1, 2, 3, ... per function; $LATEST points at the newest
    runtime: Runtime
    handler: str
    memory: int
    timeout: int
    environment: Mapping[str, str]
    code_sha256: str
    image: str | None  # the built image tag for runtime "image"; None otherwise
    created_at: datetime
    network: NetworkMode = "default"

    @property
    def key(self) -> str:
        """Identity of this version across the platform: `name:version`."""
        return f"{self.function_name}:{self.version}"


@dataclass(frozen=True, slots=True)
class Route:
    """A deployed route: a RouteSpec bound to a function and qualifier."""

    method: str
    path: str
    function_name: str
    qualifier: str = LATEST
    auth: AuthMode = "api_key"

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key record. Only the hash of the secret is ever stored."""

    key_id: str  # public, part of the presented key: fnp_<key_id>_<secret>
    name: str
    scope: KeyScope
    secret_hash: str  # sha256 hex of the secret part
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class InvocationRecord:
    """What one invocation did; written in batches off the hot path."""

    request_id: str
    function_name: str
    version: int
    executed_version: str  # what the START line names: "$LATEST" or the version number
    started_at: datetime
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int | None
    init_duration_ms: float | None  # set on cold starts only
    error_type: str | None  # None on success

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(milliseconds=self.duration_ms)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One line of a function's log: its output, or a platform line (START/END/REPORT) rendered
    from its invocation record (fnplat.lambda_logs)."""

    function_name: str
    request_id: str | None
    timestamp: datetime
    message: str
