"""Settings of one platform process, from defaults, environment variables and CLI flags."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    return Path(os.environ.get("FNPLAT_DATA_DIR", Path.home() / ".fnplat"))


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    # Runtime API listener: on the task network's gateway address (tasks reach nothing else on the host).
    runtime_api_port: int = 9001  # 0 = any free port (tests)
    task_network: str = "fnplat-tasks"
    task_subnet: str = "172.31.252.0/22"
    default_concurrency: int = 100  # max tasks per function
    queue_timeout_s: float = 3.0  # bounded wait when a function is at its concurrency limit, then 429
    max_queue_length: int = 1000  # waiters per function beyond which requests are throttled at once
    keep_alive_s: float = 600.0  # idle tasks are reaped after this
    init_timeout_s: float = 10.0  # a task must ask for its first event within this (Lambda's init limit)
    task_memory_capacity_mb: int = 0  # 0 = 80 % of the host's memory
    pids_limit: int = 1024
    tmp_size_mb: int = 512
    task_user: str = "993:990"
    instance_id: str = "local"  # label value that tells our tasks from another controller's


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = None  # None = SQLite in data_dir
    region: str = "us-east-1"
    account_id: str = "000000000000"
    controller: ControllerSettings = field(default_factory=ControllerSettings)

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
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin-key"

    @property
    def endpoint_file(self) -> Path:
        return self.data_dir / "endpoint"

    @classmethod
    def from_env(
        cls, data_dir: Path | None = None, port: int | None = None, host: str | None = None
    ) -> Settings:
        """Defaults, overridden by FNPLAT_* environment variables, overridden by explicit arguments."""
        env = os.environ
        data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        d = ControllerSettings()
        controller = ControllerSettings(
            runtime_api_port=int(env.get("FNPLAT_RUNTIME_API_PORT", d.runtime_api_port)),
            task_network=env.get("FNPLAT_TASK_NETWORK", d.task_network),
            task_subnet=env.get("FNPLAT_TASK_SUBNET", d.task_subnet),
            default_concurrency=int(env.get("FNPLAT_CONCURRENCY", d.default_concurrency)),
            keep_alive_s=float(env.get("FNPLAT_KEEP_ALIVE", d.keep_alive_s)),
            queue_timeout_s=float(env.get("FNPLAT_QUEUE_TIMEOUT", d.queue_timeout_s)),
            task_memory_capacity_mb=int(env.get("FNPLAT_TASK_MEMORY_CAPACITY", d.task_memory_capacity_mb)),
            # Tasks are labelled with an id derived from the data dir, so a restart finds its own
            # orphans and two platforms with different data dirs never touch each other's tasks.
            instance_id=hashlib.sha256(str(data_dir).encode()).hexdigest()[:12],
        )
        return cls(
            data_dir=data_dir,
            host=host or env.get("FNPLAT_HOST", "127.0.0.1"),
            port=port if port is not None else int(env.get("FNPLAT_PORT", "8080")),
            database_url=env.get("FNPLAT_DATABASE_URL") or None,
            controller=controller,
        )

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn
