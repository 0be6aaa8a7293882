# The two set-up commands of the README: `make up` and `make test`. Both are idempotent.
.PHONY: install up test lint unit bench bench-quick

install:
	scripts/install.sh

up: install
	.venv/bin/fnctl up

lint:
	.venv/bin/ruff check .
	scripts/typecheck.sh

# Tests that restart dockerd kill every container on the machine: they run last, on their own.
test: install lint
	.venv/bin/python -m pytest
	.venv/bin/python -m pytest -m docker_restart

unit:
	.venv/bin/python -m pytest tests/unit -q

# Benchmarks (BENCHMARKS.md): a fresh platform, the baselines and every figure in one table.
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--only P1,P2 --out /tmp/bench.md".
bench: install
	.venv/bin/python -m bench $(BENCH_ARGS)

bench-quick: install
	.venv/bin/python -m bench --quick $(BENCH_ARGS)
