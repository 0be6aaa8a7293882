"""How much the bench measures: the default (full) mode and --quick."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    runs: int  # wrk runs per load (medians over them)
    duration_s: float  # seconds per wrk run
    concurrencies: tuple[int, ...]  # P2
    warm_tasks: int  # P2: warm tasks made before measuring
    cold_starts: int  # P3b
    docker_run_samples: int  # container start floor
    burst_sizes: tuple[int, ...]  # P4
    burst_duration_s: float
    deploys: int  # P6
    idle_steps: tuple[int, ...]  # controller memory
    ceiling_s: float  # aiohttp generator ceiling run

    def describe(self) -> str:
        return (
            f"{self.name}: {self.runs} wrk run(s) of {self.duration_s:g} s per load, "
            f"P3b {self.cold_starts} cold starts, P4 N={'/'.join(map(str, self.burst_sizes))} for "
            f"{self.burst_duration_s:g} s, P6 {self.deploys} deploys, memory with "
            f"{'/'.join(map(str, self.idle_steps))} idle tasks, container start floor median of "
            f"{self.docker_run_samples}"
        )


FULL = Mode(
    name="full",
    runs=3,
    duration_s=5,
    concurrencies=(1, 8, 32),
    warm_tasks=32,
    cold_starts=10,
    docker_run_samples=5,
    burst_sizes=(10, 50, 100),
    burst_duration_s=10,
    deploys=5,
    idle_steps=(0, 50, 200),
    ceiling_s=3,
)

QUICK = Mode(
    name="quick",
    runs=1,
    duration_s=2,
    concurrencies=(1, 8, 32),
    warm_tasks=32,
    cold_starts=3,
    docker_run_samples=5,
    burst_sizes=(10, 50),
    burst_duration_s=3,
    deploys=2,
    idle_steps=(0, 20),
    ceiling_s=1,
)


def select_mode(quick: bool, runs: int | None) -> Mode:
    mode = QUICK if quick else FULL
    return replace(mode, runs=runs) if runs else mode
