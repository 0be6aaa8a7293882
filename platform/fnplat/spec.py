"""function.yaml: parse and validate a function's spec into a `FunctionSpec`.

Pure: no I/O except `load_spec` reading the file. Every problem raises `SpecError` with a
message naming the file, the key and what is wrong, because that line is all a user sees.

The text is bounded before it is parsed (`SPEC_SIZE_LIMIT`) and YAML aliases are refused: the
parser is pure Python (a 2 MB flow list takes ~30 s), and an alias lets a few lines stand for
an exponentially large document (billion laughs) to whatever walks the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import yaml

from fnplat import route_grammar
from fnplat.domain import (
    FUNCTION_NAME_RE,
    MEMORY_DEFAULT_MB,
    MEMORY_MAX_MB,
    MEMORY_MIN_MB,
    NETWORK_MODES,
    RUNTIMES,
    TIMEOUT_DEFAULT_S,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
    FunctionSpec,
    NetworkMode,
    RouteSpec,
    Runtime,
    frozen_map,
)
from fnplat.errors import SpecError
from fnplat.events.invoke_config import EventInvokeConfig, parse_async_block
from fnplat.events.schedule_spec import ScheduleSpec, parse_schedules
from fnplat.http_config import NO_OVERRIDES, HttpConfig, RouteOverrides, stored_auth_mode
from fnplat.http_spec import parse_http_config, parse_route_item
from fnplat.http_spec import show_value as _show

SPEC_FILENAME = "function.yaml"
SPEC_SIZE_LIMIT = 64 * 1024  # bytes of function.yaml; a real one is well under 4 KiB

ALLOWED_KEYS: tuple[str, ...] = (
    "name",
    "runtime",
    "handler",
    "memory",
    "timeout",
    "environment",
    "routes",
    "auth",
    "async",
    "schedules",
    "cors",
    "payload",
    "network",
)

# Lambda's reserved variables (the platform sets them); `AWS_*` is reserved as a whole here.
RESERVED_ENV_NAMES = frozenset(
    {"_HANDLER", "_X_AMZN_TRACE_ID", "_LAMBDA_TELEMETRY_LOG_FD", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}
    | {"TZ"}
)
RESERVED_ENV_PREFIXES: tuple[str, ...] = ("AWS_",)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_TOTAL_LIMIT = 4096  # bytes of all names and values, as Lambda's 4 KB quota

HANDLER_MAX_LEN = 128
_HANDLER_RE = re.compile(r"^\S+$")


def parse_route(text: object, http: RouteOverrides = NO_OVERRIDES) -> RouteSpec:
    """Parse `"METHOD /path"` or `"$default"` (fnplat.route_grammar). Raises SpecError naming the route."""
    if not isinstance(text, str):
        raise SpecError(f"route must be a string like 'GET /items/{{id}}', got {_show(text)}")
    try:
        route = route_grammar.parse_route(text)
    except route_grammar.InvalidRoute as exc:
        raise SpecError(str(exc)) from None
    return replace(route, http=http) if http is not NO_OVERRIDES else route


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (`*name`, `<<: *name`) when it meets one."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.AliasEvent = self.peek_event()  # type: ignore[no-untyped-call]
            mark: yaml.Mark | None = event.start_mark  # type: ignore[assignment]  # the pure loader's
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases are not allowed (found *{event.anchor}); write the value out", mark
            )
        return super().compose_node(parent, index)


def check_spec_size(size: int, source: str = SPEC_FILENAME) -> None:
    """Refuse a function.yaml over SPEC_SIZE_LIMIT bytes, before anything reads or parses it."""
    if size > SPEC_SIZE_LIMIT:
        raise SpecError(f"{source}: is {size} bytes, over the {SPEC_SIZE_LIMIT}-byte limit")


def parse_spec(text: str, source: str = SPEC_FILENAME) -> FunctionSpec:
    """Validate function.yaml text; `source` names the file in error messages."""
    # Characters never outnumber UTF-8 bytes: a text that long is over without encoding it.
    check_spec_size(len(text) if len(text) > SPEC_SIZE_LIMIT else len(text.encode()), source)
    try:
        document = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: builds plain types only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{source}: invalid YAML{where}: {problem}") from exc
    if document is None:
        raise SpecError(f"{source}: is empty (needs at least name, runtime and handler)")
    if not isinstance(document, Mapping):
        raise SpecError(f"{source}: must be a mapping of keys (name, runtime, ...), got {_show(document)}")
    return _SpecReader(source, document).read()


def load_spec(path_or_dir: str | Path) -> FunctionSpec:
    """Read `function.yaml` from a function directory (or the given file)."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / SPEC_FILENAME
    try:
        with path.open("rb") as handle:
            raw = handle.read(SPEC_SIZE_LIMIT + 1)  # never more than the cap into memory
        check_spec_size(len(raw), str(path))
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: not found (a function directory needs a {SPEC_FILENAME})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read: {exc}") from exc
    return parse_spec(text, str(path))


class _SpecReader:
    """Reads one document key by key; each method validates one key."""

    def __init__(self, source: str, document: Mapping[Any, Any]) -> None:
        self.source = source
        self.doc = document

    def fail(self, message: str) -> SpecError:
        return SpecError(f"{self.source}: {message}")

    def read(self) -> FunctionSpec:
        for key in self.doc:
            if key not in ALLOWED_KEYS:
                raise self.fail(f"unknown key {_show(key)} (allowed: {', '.join(ALLOWED_KEYS)})")
        runtime = self.runtime()
        name, handler = self.name(), self.handler(runtime)
        memory = self.bounded_int("memory", MEMORY_MIN_MB, MEMORY_MAX_MB, MEMORY_DEFAULT_MB)
        timeout = self.bounded_int("timeout", TIMEOUT_MIN_S, TIMEOUT_MAX_S, TIMEOUT_DEFAULT_S)
        environment = self.environment()
        http = self.http()
        routes = self.routes()
        effective = [route.http.apply(http).auth for route in routes] or [http.auth]
        return FunctionSpec(
            name=name,
            runtime=runtime,
            handler=handler,
            memory=memory,
            timeout=timeout,
            environment=environment,
            routes=routes,
            auth=stored_auth_mode(effective),
            http=http,
            event_invoke=self.event_invoke(name),
            schedules=self.schedules(),
            network=self.network(),
        )

    def required_str(self, key: str) -> str:
        if key not in self.doc or self.doc[key] is None:
            raise self.fail(f"missing required key '{key}'")
        value = self.doc[key]
        if not isinstance(value, str):
            raise self.fail(f"{key} must be a string, got {_show(value)}")
        return value

    def name(self) -> str:
        name = self.required_str("name")
        if not FUNCTION_NAME_RE.match(name):
            raise self.fail(f"name must be 1-64 letters, digits, '-' or '_', got {name!r}")
        return name

    def runtime(self) -> Runtime:
        runtime = self.required_str("runtime")
        if runtime not in RUNTIMES:
            raise self.fail(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        return cast(Runtime, runtime)

    def handler(self, runtime: Runtime) -> str:
        optional = runtime in ("image", "provided")
        if self.doc.get("handler") is None:
            if optional:
                return ""
            example = "app.handler" if runtime == "python3.11" else "index.handler"
            raise self.fail(f"missing required key 'handler' for runtime {runtime} (e.g. {example})")
        handler = self.required_str("handler")
        if not _HANDLER_RE.match(handler) or len(handler) > HANDLER_MAX_LEN:
            raise self.fail(f"handler must be 1-{HANDLER_MAX_LEN} characters without spaces, got {handler!r}")
        if not optional and "." not in handler:
            raise self.fail(f"handler must look like 'module.function', got {handler!r}")
        return handler

    def bounded_int(self, key: str, low: int, high: int, default: int) -> int:
        value = self.doc.get(key)
        if value is None:
            return default
        # bool is an int subclass: `memory: yes` must not become 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(f"{key} must be an integer between {low} and {high}, got {_show(value)}")
        return value

    def environment(self) -> Mapping[str, str]:
        raw = self.doc.get("environment")
        if raw is None:
            return frozen_map()
        if not isinstance(raw, Mapping):
            raise self.fail(f"environment must be a mapping of NAME: value, got {_show(raw)}")
        env: dict[str, str] = {}
        for name, value in raw.items():
            env[self.env_name(name)] = self.env_value(name, value)
        total = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
        if total > ENV_TOTAL_LIMIT:
            raise self.fail(f"environment is {total} bytes, over the {ENV_TOTAL_LIMIT}-byte limit")
        return frozen_map(env)

    def env_name(self, name: object) -> str:
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise self.fail(f"environment: name {_show(name)} must match [A-Za-z_][A-Za-z0-9_]*")
        if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
            raise self.fail(f"environment: {name} is reserved by the Lambda runtime environment")
        return name

    def env_value(self, name: str, value: object) -> str:
        # Strings and integers only: YAML turns `yes`/`off` into booleans and `1.10` into 1.1,
        # so stringifying those would silently change what the user wrote. They must quote them.
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self.fail(f"environment: {name} must be a string or an integer (quote it), got {_show(value)}")

    def routes(self) -> tuple[RouteSpec, ...]:
        raw = self.doc.get("routes")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.fail(
                "routes must be a list of 'METHOD /path' strings or {route: ...} mappings, "
                f"got {_show(raw)}"
            )
        routes: list[RouteSpec] = []
        shapes: dict[str, str] = {}
        for index, item in enumerate(raw):
            try:
                text, overrides = parse_route_item(item, f"routes[{index}]")
            except SpecError as exc:
                raise self.fail(exc.message) from exc
            try:
                route = parse_route(text, overrides)
            except SpecError as exc:
                raise self.fail(f"routes[{index}]: {exc.message}") from exc
            shape = route_grammar.route_shape(route.method, route.path)
            if shape in shapes:
                raise self.fail(f"routes[{index}]: {route.route_key!r} duplicates {shapes[shape]!r}")
            shapes[shape] = route.route_key
            routes.append(route)
        return tuple(routes)

    def event_invoke(self, function_name: str) -> EventInvokeConfig | None:
        if "async" not in self.doc:
            return None
        try:
            return parse_async_block(self.doc["async"], function_name)
        except SpecError as exc:
            raise self.fail(exc.message) from None

    def schedules(self) -> tuple[ScheduleSpec, ...]:
        try:
            return parse_schedules(self.doc.get("schedules"))
        except SpecError as exc:
            raise self.fail(exc.message) from None

    def network(self) -> NetworkMode:
        value = self.doc.get("network")
        if value is None:
            return "default"
        if value not in NETWORK_MODES:
            raise self.fail(f"network must be one of {', '.join(NETWORK_MODES)}, got {_show(value)}")
        return cast(NetworkMode, value)


    def http(self) -> HttpConfig:
        """Function-level `auth`, `cors` and `payload` (fnplat.http_spec)."""
        try:
            return parse_http_config(self.doc)
        except SpecError as exc:
            raise self.fail(exc.message) from exc
