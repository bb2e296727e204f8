# casegrid: two commands.
#   make run   – set up, start the embedded PostGIS, load the sample city, serve on :8000
#   make test  – set up, run the whole test suite against a throwaway PostGIS
#   make lock  – after editing pyproject.toml's dependencies: regenerate requirements/*.lock
.PHONY: run test bench soak lint lock setup setup-test

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

run: setup
	@scripts/run.sh

test: setup-test
	.venv/bin/pytest -q

lint: setup-test
	.venv/bin/ruff check .

bench: setup-test
	.venv/bin/python -m bench

# 10 minutes of mixed traffic (intake 80%, reads 15%, workflow 5%); adds its section to RESULTS.md
soak: setup-test
	.venv/bin/python -m bench.soak --results bench/RESULTS.md

# Resolve requirements/*.lock again from pyproject.toml (from PyPI, with uv; see README).
UV_VERSION = 0.13.9
lock:
	@test -x .venv/bin/python || python3 -m venv .venv
	@.venv/bin/uv --version 2>/dev/null | grep -qx "uv $(UV_VERSION).*" || .venv/bin/pip install -q "uv==$(UV_VERSION)"
	.venv/bin/python scripts/lock.py
