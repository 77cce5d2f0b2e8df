#!/usr/bin/env bash
# Start Strata on the embedded defaults: SQLite, a local object folder and Celery's
# filesystem broker, all under var/. Runs the web app and a Celery worker (with
# beat) until Ctrl-C. Any setting can be overridden from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT="${PORT:-8000}"

$BIN/python manage.py migrate --noinput >/dev/null
$BIN/python manage.py strata_setup

$BIN/celery -A config worker --beat --loglevel INFO --concurrency 2 \
    --schedule var/celerybeat-schedule >var/worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM

echo "Strata is starting on http://127.0.0.1:$PORT/ (worker log: var/worker.log)"
$BIN/python manage.py runserver "127.0.0.1:$PORT"
