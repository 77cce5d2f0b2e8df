#!/usr/bin/env bash
# Start Strata on the embedded defaults: SQLite, a local object folder and Celery's
# filesystem broker, all under var/. Runs the web app and a Celery worker (with
# beat) until Ctrl-C. Any setting can be overridden from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT="${PORT:-8000}"
VAR="${STRATA_VAR_DIR:-var}"
mkdir -p "$VAR"
# The web's and the worker's metrics meet in one folder (prometheus_client's
# multiprocess mode), emptied at each start so no old process's counts linger.
export PROMETHEUS_MULTIPROC_DIR="$(cd "$VAR" && pwd)/metrics"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db

# Mail (rollback requests and decisions) is written to $VAR/mail/ unless a backend is set.
export EMAIL_BACKEND="${EMAIL_BACKEND:-django.core.mail.backends.filebased.EmailBackend}"

$BIN/python manage.py migrate --noinput >/dev/null
# The first start builds the demo catalog into the empty Strata; STRATA_DEMO=0 skips it.
if [ "${STRATA_DEMO:-1}" = "0" ]; then
    $BIN/python manage.py strata_setup
else
    $BIN/python manage.py strata_setup --demo
fi

$BIN/celery -A config worker --beat --loglevel INFO --concurrency 2 \
    --schedule "$VAR/celerybeat-schedule" >"$VAR/worker.log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM

echo "Strata is starting on http://127.0.0.1:$PORT/ (worker log: $VAR/worker.log)"
$BIN/python manage.py runserver "127.0.0.1:$PORT"
