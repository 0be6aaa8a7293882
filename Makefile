# The two set-up commands of the README: `make up` and `make test`. Both are idempotent.
.PHONY: install up test lint unit bench bench-quick

install:
	scripts/install.sh

up: install
	.venv/bin/fnctl up

lint:
	.venv/bin/ruff check .
	scripts/typecheck.sh

test: install lint
	.venv/bin/python -m pytest

unit:
	.venv/bin/python -m pytest tests/unit -q
