"""Celery's side of observability, wired through Celery's signals.

- Logging: the worker configures logging from the settings' LOGGING (so it writes
  the same JSON lines as the web) instead of installing Celery's own format.
- Context: each task's log lines carry its name and id, and the id of the web
  request that queued it, which travels in a message header.
- Metrics: each task run's duration by outcome, and its failures; a worker serves
  its own /metrics when STRATA_WORKER_METRICS_PORT is set.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import Token
from typing import Any

from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun, worker_init

from ops import context, metrics
from ops.logging import configure_worker_logging

logger = logging.getLogger(__name__)

# The message header that carries the request id from the web into the task.
REQUEST_ID_HEADER = "strata_request_id"

# Tasks running in this process: task id -> (context token, start time).
_running: dict[str, tuple[Token[Any], float]] = {}


@setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, **kwargs: Any) -> None:
    configure_worker_logging(loglevel)


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = context.current().get("request_id")
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    # A custom header becomes an attribute of the task's request. An eager task
    # has none, but runs inside the request's own context.
    request_id = getattr(task.request, REQUEST_ID_HEADER, None)
    token = context.bind(task=task.name, task_id=task_id, request_id=request_id)
    _running[task_id] = (token, time.perf_counter())


@task_postrun.connect
def _task_finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _running.pop(task_id or "", None)
    if started is None or task is None:
        return
    token, began = started
    metrics.CELERY_TASK_DURATION.labels(task=task.name, outcome=(state or "unknown").lower()).observe(
        time.perf_counter() - began
    )
    if state == "FAILURE":
        metrics.CELERY_TASK_FAILURES.labels(task=task.name).inc()
    # A token set in another context (a pool that switched threads) has nothing to undo here.
    with contextlib.suppress(ValueError):
        context.reset(token)


@worker_init.connect
def _serve_metrics(sender: Any = None, **kwargs: Any) -> None:
    from django.conf import settings

    port = settings.STRATA_WORKER_METRICS_PORT
    if not port:
        return
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "") or str(
        getattr(sender, "pool_cls", "")
    )
    if "prefork" in pool and not metrics.multiprocess_enabled():
        # Tasks run in forked pool processes whose counts this process cannot see.
        logger.warning(
            "STRATA_WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: the prefork "
            "pool's task metrics will be missing; set PROMETHEUS_MULTIPROC_DIR to an empty folder."
        )
    try:
        metrics.serve_worker_metrics(port, settings.STRATA_METRICS_TOKEN)
    except OSError as error:
        # A port in use must not keep the worker from working: say so, and go on.
        logger.error("cannot serve worker metrics on port %s: %s", port, error)
