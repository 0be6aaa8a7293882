"""Settings of one platform process, from defaults, environment variables and CLI flags.

Every setting is declared once, as a field of a frozen dataclass with `setting(...)`: its
default, the `FNPLAT_*` environment variable that overrides it, and one line of help. Groups of
settings are dataclasses of their own, nested in `Settings`. `Settings.from_env` reads them all,
and `settings_table()` lists them for the README's configuration table (a test keeps the two in
step), so a new setting is one declaration, never three edits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from fnplat.errors import InvalidParameter

T = TypeVar("T")


def setting(default: T, env: str | None, help: str, *, secret: bool = False) -> T:
    """A settings field: `default`, overridden by environment variable `env` (None: not settable
    from the environment), described by `help` (one line, shown in the README table). A `secret`
    one is left out of the settings' repr, so it never reaches a log line."""
    return field(default=default, repr=not secret, metadata={"env": env, "help": help})


def default_data_dir() -> Path:
    return Path(os.environ.get("FNPLAT_DATA_DIR", Path.home() / ".fnplat"))


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """What a function's output (its tasks' stdout and stderr) may cost the platform."""

    max_line_bytes: int = setting(
        262144,
        "FNPLAT_LOG_MAX_LINE_BYTES",
        "bytes of one output line kept; the rest is cut off with a marker (Lambda: 256 KB)",
    )
    lines_per_s: float = setting(
        1000.0,
        "FNPLAT_LOG_LINES_PER_SECOND",
        "output lines per second per function (all its tasks) before lines are dropped with a"
        " notice (0 = no limit)",
    )
    bytes_per_s: float = setting(
        1048576.0,
        "FNPLAT_LOG_BYTES_PER_SECOND",
        "output bytes per second per function, likewise (0 = no limit)",
    )
    burst_s: float = setting(
        10.0, "FNPLAT_LOG_BURST_SECONDS", "seconds' worth of those rates a function may write at once"
    )


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """What tasks and image builds may reach and use (controller/netfilter*.py, taskdef.py)."""

    firewall: bool = setting(
        True,
        "FNPLAT_TASK_FIREWALL",
        "install the iptables rules that confine tasks and builds (needs root); false only on"
        " unprivileged dev set-ups: tasks then reach host services, link-local and private networks",
    )
    allow_cidrs: tuple[str, ...] = setting(
        (),
        "FNPLAT_TASK_ALLOW_CIDRS",
        "comma-separated private IPv4 CIDRs tasks may reach (never the host, link-local or the"
        " metadata store)",
    )
    mb_per_vcpu: int = setting(
        1769, "FNPLAT_TASK_MB_PER_VCPU", "MB of task memory that buy one vCPU of CPU limit (Lambda: 1769)"
    )
    min_cpus: float = setting(0.25, "FNPLAT_TASK_MIN_CPUS", "smallest CPU limit of a task, in vCPUs")
    cpu_limit_after_init: bool = setting(
        True,
        "FNPLAT_TASK_CPU_LIMIT_AFTER_INIT",
        "apply a task's CPU limit once it is ready, so init runs unthrottled as on Lambda"
        " (false: from container start)",
    )
    build_network: str = setting(
        "fnplat-builds", "FNPLAT_BUILD_NETWORK", "the bridge network the RUN steps of image builds use"
    )
    build_subnet: str = setting("172.31.248.0/24", "FNPLAT_BUILD_SUBNET", "subnet of that bridge")
    build_memory_mb: int = setting(
        2048, "FNPLAT_BUILD_MEMORY", "MB of memory (no swap) each step of an image build may use"
    )
    allow_function_bases: bool = setting(
        False,
        "FNPLAT_BUILD_ALLOW_FUNCTION_BASES",
        "let a function's Dockerfile build on another function's image (fnplat-fn/*)",
    )


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    # Runtime API listener: on the task network's gateway address (tasks reach nothing else on the host).
    runtime_api_port: int = setting(
        9001, "FNPLAT_RUNTIME_API_PORT", "Runtime API port on the task bridge's gateway address (0 = any)"
    )
    task_network: str = setting(
        "fnplat-tasks", "FNPLAT_TASK_NETWORK", "the isolated bridge network for tasks"
    )
    task_subnet: str = setting("172.31.252.0/22", "FNPLAT_TASK_SUBNET", "subnet of that bridge")
    default_concurrency: int = setting(
        100, "FNPLAT_CONCURRENCY", "max tasks (concurrent invocations) per function"
    )
    queue_timeout_s: float = setting(
        3.0, "FNPLAT_QUEUE_TIMEOUT", "seconds an invocation waits for a task at the limit before 429"
    )
    max_queue_length: int = setting(
        1000,
        "FNPLAT_MAX_QUEUE_LENGTH",
        "invocations waiting per function beyond which calls get 429 at once",
    )
    keep_alive_s: float = setting(600.0, "FNPLAT_KEEP_ALIVE", "seconds an idle task is kept warm")
    init_timeout_s: float = setting(
        10.0,
        "FNPLAT_INIT_TIMEOUT",
        "seconds a task may take to ask for its first event (Lambda's init limit)",
    )
    task_memory_capacity_mb: int = setting(
        0,
        "FNPLAT_TASK_MEMORY_CAPACITY",
        "MB of task memory limits handed out before idle tasks are evicted or calls wait"
        " (0 = 80 % of host memory)",
    )
    pids_limit: int = setting(1024, "FNPLAT_TASK_PIDS_LIMIT", "processes and threads per task")
    tmp_size_mb: int = setting(512, "FNPLAT_TASK_TMP_SIZE", "MB of the writable /tmp of each task")
    task_user: str = setting("993:990", "FNPLAT_TASK_USER", "numeric uid:gid tasks run as")
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    engine_resync_wait_s: float = setting(
        30.0,
        "FNPLAT_ENGINE_RESYNC_WAIT",
        "seconds invocations wait, after Docker's event stream broke (dockerd restarting), for the"
        " controller to re-check its tasks before trusting warm ones",
    )
    # Derived from the data dir by from_env (see there), not set directly.
    instance_id: str = setting("local", None, "label value that tells our tasks from another controller's")
    output: OutputSettings = field(default_factory=OutputSettings)


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Bounds of the recorder, retention of records and logs, garbage collection, and the
    Postgres timeouts that keep a hung database from blocking anything (ARCHITECTURE.md,
    "Bounds and recovery")."""

    record_backlog: int = setting(
        10_000,
        "FNPLAT_RECORD_BACKLOG",
        "invocation records held in memory while the store fails; older ones spill to the journal",
    )
    log_backlog_bytes: int = setting(
        32 * 1024 * 1024,
        "FNPLAT_LOG_BACKLOG_BYTES",
        "bytes of output lines held in memory while the store fails; past it lines are dropped and counted",
    )
    flush_interval_s: float = setting(
        0.5, "FNPLAT_TELEMETRY_INTERVAL", "seconds between writes of records and lines to the store"
    )
    close_timeout_s: float = setting(
        10.0,
        "FNPLAT_TELEMETRY_CLOSE_TIMEOUT",
        "seconds shutdown waits for the store; what is unwritten then goes to the journal",
    )
    retention_days: float = setting(
        7.0, "FNPLAT_RETENTION_DAYS", "days invocation records and log lines are kept (usage rollups stay)"
    )
    max_invocation_records: int = setting(
        5_000_000, "FNPLAT_RETENTION_MAX_RECORDS", "invocation records kept at most (oldest deleted first)"
    )
    max_log_lines: int = setting(
        20_000_000, "FNPLAT_RETENTION_MAX_LINES", "log lines kept at most (oldest deleted first)"
    )
    housekeeping_interval_s: float = setting(
        300.0,
        "FNPLAT_HOUSEKEEPING_INTERVAL",
        "seconds between retention and garbage-collection runs (0 = never)",
    )
    gc_grace_s: float = setting(
        3600.0,
        "FNPLAT_GC_GRACE",
        "seconds an unreferenced artifact, code dir or function image is kept before it is collected",
    )
    postgres_connect_timeout_s: float = setting(
        5.0, "FNPLAT_PG_CONNECT_TIMEOUT", "seconds to open a Postgres connection"
    )
    postgres_statement_timeout_s: float = setting(
        15.0, "FNPLAT_PG_STATEMENT_TIMEOUT", "seconds a Postgres statement may run (migrations excepted)"
    )
    postgres_pool_timeout_s: float = setting(
        5.0, "FNPLAT_PG_POOL_TIMEOUT", "seconds to wait for a free connection of the pool"
    )

    @property
    def store_call_deadline_s(self) -> float:
        """How long a caller waits for one store call before answering 503: a hung Postgres
        answers neither the statement timeout (it is frozen) nor a cancel request."""
        return (
            self.postgres_pool_timeout_s + self.postgres_connect_timeout_s + self.postgres_statement_timeout_s
        )


@dataclass(frozen=True, slots=True)
class SecretsSettings:
    """The key that encrypts function environments at rest (fnplat/secret_keys.py).

    Every process sharing one database must use the same keys: with Postgres, give them all
    FNPLAT_SECRET_KEY (e.g. from a Kubernetes Secret) or the same key file.
    """

    key: str | None = setting(
        None,
        "FNPLAT_SECRET_KEY",
        "key that encrypts function environments (44 url-safe base64 characters; default: "
        "FNPLAT_SECRET_KEY_FILE, else secret.key in the data dir, made on first start)",
        secret=True,
    )
    key_file: str | None = setting(
        None,
        "FNPLAT_SECRET_KEY_FILE",
        "file holding that key (first line); further lines are retired keys that still decrypt",
    )
    old_keys: tuple[str, ...] = setting(
        (),
        "FNPLAT_SECRET_OLD_KEYS",
        "retired keys (comma-separated) that still decrypt; rows are re-encrypted with the key at start",
        secret=True,
    )


@dataclass(frozen=True, slots=True)
class ShutdownSettings:
    timeout_s: float = setting(
        30.0,
        "FNPLAT_SHUTDOWN_TIMEOUT",
        "seconds from SIGTERM until the server has exited: in-flight invocations drain for two"
        " thirds of it, then tasks stop (fnctl down waits 5 s more; so should docker run --stop-timeout)",
    )


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    # What one client may hold of the gateway (ARCHITECTURE.md, "Bounds and recovery").
    max_connections: int = setting(
        4096,
        "FNPLAT_MAX_CONNECTIONS",
        "open client connections beyond which new ones are closed at once"
        " (lowered to 3/4 of the open-files limit if that is less)",
    )
    keepalive_timeout_s: float = setting(
        75.0,
        "FNPLAT_HTTP_KEEPALIVE_TIMEOUT",
        "seconds an idle client connection stays open (keep it above a fronting load balancer's)",
    )
    header_timeout_s: float = setting(
        20.0,
        "FNPLAT_HTTP_HEADER_TIMEOUT",
        "seconds a client has to send a whole request head (and the TLS handshake), else 408 and close",
    )
    body_timeout_s: float = setting(
        60.0,
        "FNPLAT_HTTP_BODY_TIMEOUT",
        "seconds a request body may stall between two reads, else 408 and close",
    )
    # (RUF009: `setting` returns a field, and the default None is immutable.)
    tls_cert: Path | None = setting(  # noqa: RUF009
        None, "FNPLAT_TLS_CERT", "PEM certificate chain: with FNPLAT_TLS_KEY the gateway serves HTTPS only"
    )
    tls_key: Path | None = setting(None, "FNPLAT_TLS_KEY", "PEM private key of FNPLAT_TLS_CERT")  # noqa: RUF009

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Gateways and controllers as separate processes sharing one Postgres (`fnctl server ...`):
    membership, placement and the calls between them (ARCHITECTURE.md, "Cluster")."""

    secret: str | None = setting(
        None,
        "FNPLAT_CLUSTER_SECRET",
        "shared secret that authenticates gateways to controllers (required by the server roles)",
        secret=True,
    )
    node_id: str = setting(
        "", "FNPLAT_NODE_ID", "this controller's stable node name (default: the host name)"
    )
    node_address: str = setting(
        "",
        "FNPLAT_NODE_ADDRESS",
        "address gateways use to reach this controller (default: its first non-loopback IPv4 address)",
    )
    node_host: str = setting(
        "0.0.0.0", "FNPLAT_NODE_HOST", "address the controller's node API binds (server controller role)"
    )
    node_port: int = setting(7070, "FNPLAT_NODE_PORT", "port of the controller's node API")
    heartbeat_interval_s: float = setting(
        2.0, "FNPLAT_HEARTBEAT_INTERVAL", "seconds between a controller's heartbeats in the store"
    )
    missed_beats: int = setting(
        3, "FNPLAT_HEARTBEAT_MISSED", "heartbeats a controller may miss before it counts as dead"
    )
    placement_tries: int = setting(
        3, "FNPLAT_PLACEMENT_TRIES", "controllers a gateway tries for one invocation (home, then spill-over)"
    )
    admin_key: str | None = setting(
        None,
        "FNPLAT_ADMIN_KEY",
        "bootstrap admin API key (fnp_<id>_<secret>), stored hashed if missing (server gateway role)",
        secret=True,
    )
    schema_wait_s: float = setting(
        300.0,
        "FNPLAT_SCHEMA_WAIT",
        "seconds a server role waits for `fnctl server migrate` to bring the store to its schema",
    )


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata={
            "env": "FNPLAT_DATA_DIR",
            "help": "SQLite database, artifacts, unpacked code, admin key (default ~/.fnplat)",
        },
    )
    host: str = setting("127.0.0.1", "FNPLAT_HOST", "where the gateway listens (loopback by default)")
    port: int = setting(8080, "FNPLAT_PORT", "the gateway's port")
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    database_url: str | None = setting(
        None, "FNPLAT_DATABASE_URL", "e.g. postgresql://user:pw@host/db (default: SQLite in the data dir)"
    )
    region: str = setting("us-east-1", "FNPLAT_REGION", "region in ARNs and AWS_REGION of tasks")
    account_id: str = setting("000000000000", "FNPLAT_ACCOUNT_ID", "account id in ARNs")
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    shutdown: ShutdownSettings = field(default_factory=ShutdownSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'fnplat.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def code_dir(self) -> Path:
        """Unpacked artifacts, bind-mounted read-only into tasks as /var/task."""
        return self.data_dir / "code"

    @property
    def journal_dir(self) -> Path:
        """Invocation records (and, at shutdown, lines) the store could not take, replayed later."""
        return self.data_dir / "journal"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin-key"

    @property
    def endpoint_file(self) -> Path:
        return self.data_dir / "endpoint"

    @property
    def secret_key_file(self) -> Path:
        """The key file used when neither FNPLAT_SECRET_KEY nor FNPLAT_SECRET_KEY_FILE is set."""
        return self.data_dir / "secret.key"

    @classmethod
    def from_env(
        cls,
        data_dir: Path | None = None,
        port: int | None = None,
        host: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Defaults, overridden by FNPLAT_* environment variables, overridden by explicit arguments."""
        environ = os.environ if env is None else env
        settings = _from_environment(cls, environ)
        data_dir = (data_dir or settings.data_dir).expanduser().resolve()
        overrides: dict[str, Any] = {"data_dir": data_dir}
        if port is not None:
            overrides["port"] = port
        if host is not None:
            overrides["host"] = host
        # Tasks are labelled with an id derived from the data dir, so a restart finds its own
        # orphans and two platforms with different data dirs never touch each other's tasks.
        instance_id = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
        overrides["controller"] = dataclasses.replace(settings.controller, instance_id=instance_id)
        return dataclasses.replace(settings, **overrides)

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn


# ---- reading and listing the declarations ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One row of the configuration table."""

    env: str
    path: str  # dotted attribute path, e.g. controller.keep_alive_s
    type_name: str
    default: str
    help: str


def _parser(annotation: Any) -> tuple[Callable[[str], Any], str, bool]:
    """(parse, type name, optional) for a field's resolved type."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) != len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unsupported settings type {annotation!r}")
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if annotation is bool:
        return _parse_bool, "bool", optional
    if annotation is int:
        return int, "int", optional
    if annotation is float:
        return float, "float", optional
    if annotation is str:
        return str, "str", optional
    if annotation is Path:
        return lambda text: Path(text).expanduser(), "path", optional
    if origin is tuple and typing.get_args(annotation)[1:] == (Ellipsis,):
        return _parse_list, "list", optional
    raise TypeError(f"unsupported settings type {annotation!r}")


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _walk(cls: type[Any], prefix: str = "") -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            yield from _walk(cast(type[Any], annotation), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, annotation


def _from_environment(cls: type[T], environ: Mapping[str, str]) -> T:
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cast(Any, cls)):
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            values[f.name] = _from_environment(cast(type[Any], annotation), environ)
            continue
        name = f.metadata.get("env")
        if not name or name not in environ:
            continue
        parse, type_name, optional = _parser(annotation)
        raw = environ[name]
        if optional and raw == "":
            values[f.name] = None
            continue
        try:
            values[f.name] = parse(raw)
        except ValueError as exc:
            raise InvalidParameter(f"{name}={raw!r} is not a valid {type_name}: {exc}") from None
    return cls(**values)


def settings_table() -> list[SettingDoc]:
    """Every setting that an environment variable can set, in declaration order."""
    rows = []
    for path, f, annotation in _walk(Settings):
        env = f.metadata.get("env")
        if not env:
            continue
        _, type_name, _ = _parser(annotation)
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = "" if default is None else ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append(SettingDoc(env, path, type_name, shown, str(f.metadata.get("help", ""))))
    return rows


def settings_markdown() -> str:
    """The README's configuration table (scripts/update-settings-table.py writes it there)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for row in settings_table():
        default = f"`{row.default}`" if row.default else ""
        lines.append(f"| `{row.env}` | {default} | {row.help} |")
    return "\n".join(lines)
