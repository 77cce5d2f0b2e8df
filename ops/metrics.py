"""Prometheus metrics: what is measured, and how it is exposed.

Histograms and counters are recorded where the work happens (the request
middleware, Celery's task signals, the store's push and pull paths). The store's
bytes per tier are not recorded at all: a collector reads them from the catalog
when Prometheus scrapes.

Several processes (gunicorn workers, Celery pool processes, command-line pushes)
each hold their own counts. When PROMETHEUS_MULTIPROC_DIR names a folder,
prometheus_client writes every process's values to files there and a scrape adds
them up; the folder must be emptied when the service starts (scripts/run.sh does).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The `_created` series double what is stored for no reading anyone does here.
disable_created_metrics()

_MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _MULTIPROCESS_DIR:
    # prometheus_client writes its files there from the first value on; a missing
    # folder would fail the first request rather than start-up.
    os.makedirs(_MULTIPROCESS_DIR, exist_ok=True)

# From 5 ms to 10 s: enough buckets around the usual page times (tens to hundreds
# of ms) for p50, p95 and p99 to be read with little interpolation error.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Tasks run from milliseconds (a poll) to an hour (a retention run over a big store).
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
# Methods outside this set share one label value, so a scanner cannot add series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUEST_DURATION = Histogram(
    "strata_http_request_duration_seconds",
    "Time from a request's arrival to its response, by URL pattern, method and status class.",
    ["view", "method", "status"],
    buckets=HTTP_BUCKETS,
)
CELERY_TASK_DURATION = Histogram(
    "strata_celery_task_duration_seconds",
    "Time a Celery task ran, by task name and outcome (success, failure, retry, ...).",
    ["task", "outcome"],
    buckets=TASK_BUCKETS,
)
CELERY_TASK_FAILURES = Counter(
    "strata_celery_task_failures",
    "Celery task runs that ended in an exception, by task name.",
    ["task"],
)
STORE_TRANSFERRED_BYTES = Counter(
    "strata_store_transferred_bytes",
    "Bytes written to the object store by pushes and read from it by pulls.",
    ["direction"],
)


def http_request_observe(*, view: str, method: str, status: int, seconds: float) -> None:
    """Record one request: `view` is its URL pattern (never the raw path)."""
    HTTP_REQUEST_DURATION.labels(
        view=view,
        method=method if method in HTTP_METHODS else "other",
        status=f"{status // 100}xx",
    ).observe(seconds)


def store_transferred(direction: str, nbytes: int) -> None:
    """Count bytes moved into (`push`) or out of (`pull`) the object store."""
    if nbytes > 0:
        STORE_TRANSFERRED_BYTES.labels(direction=direction).inc(nbytes)


class StoreCollector(Collector):
    """The store's bytes and packs per tier, read from the catalog at scrape time.

    One aggregate query over Pack. It is registered only on the registry a web
    scrape reads (never in the multiprocess files nor on a worker's), so however
    many processes run, the store is counted once.
    """

    def describe(self) -> Iterable[Metric]:
        # Declared empty so that registering does not query the database.
        return []

    def collect(self) -> Iterator[Metric]:
        from django.db import DatabaseError
        from django.db.models import Count, Sum

        from catalog.models import Pack  # the worker imports this module before the apps are ready

        try:
            rows = list(Pack.objects.values("tier").annotate(stored=Sum("size"), packs=Count("id")))
        except DatabaseError as error:
            # A scrape still answers with the process metrics; /readyz says why.
            logger.warning("store metrics skipped: the catalog did not answer (%s)", error)
            return
        stored = {tier: 0 for tier in Pack.Tier.values}
        packs = dict(stored)
        for row in rows:
            stored[row["tier"]] = row["stored"] or 0
            packs[row["tier"]] = row["packs"]
        bytes_family = GaugeMetricFamily(
            "strata_store_bytes", "Bytes of packs in the object store, by storage tier.", labels=["tier"]
        )
        packs_family = GaugeMetricFamily(
            "strata_store_packs", "Packs in the object store, by storage tier.", labels=["tier"]
        )
        for tier in stored:
            bytes_family.add_metric([tier], stored[tier])
            packs_family.add_metric([tier], packs[tier])
        yield bytes_family
        yield packs_family


class _ProcessMetrics(Collector):
    """This process's own registry, forwarded (single-process mode)."""

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def _process_registry() -> CollectorRegistry:
    """Everything the processes of this host recorded: the shared folder's files in
    multiprocess mode, else this process's default registry."""
    registry = CollectorRegistry()
    if _MULTIPROCESS_DIR:
        multiprocess.MultiProcessCollector(registry, path=_MULTIPROCESS_DIR)
    else:
        registry.register(_ProcessMetrics())
    return registry


_web_registry: CollectorRegistry | None = None
_web_registry_lock = threading.Lock()


def web_registry() -> CollectorRegistry:
    """What the web's /metrics serves: the recorded metrics and the store's tiers."""
    global _web_registry
    with _web_registry_lock:
        if _web_registry is None:
            registry = _process_registry()
            registry.register(StoreCollector())
            _web_registry = registry
    return _web_registry


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an Authorization header carries `token` as a Bearer token (compared
    in constant time, so the token cannot be guessed by timing)."""
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Every scrape would be a line on stderr outside the JSON log.
        pass


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def worker_metrics_app(token: str) -> WsgiApp:
    """The WSGI app a worker serves: its recorded metrics (no store tiers, which
    the web reports), behind the same optional token as the web's /metrics."""
    inner = make_wsgi_app(_process_registry())

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token and not bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")]
            )
            return [b"send the metrics token as: Authorization: Bearer <token>\n"]
        return inner(environ, start_response)

    return app


def serve_worker_metrics(port: int, token: str, address: str = "0.0.0.0") -> WSGIServer:
    """Serve a worker's /metrics on `port` from a daemon thread; returns the server.

    All interfaces by default: this is for workers on other machines, scraped
    from the private network (set STRATA_METRICS_TOKEN where that is not enough).
    """
    server = make_server(address, port, worker_metrics_app(token), _ThreadingServer, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="strata-metrics", daemon=True)
    thread.start()
    logger.info("serving worker metrics on %s:%s/metrics", address, port)
    return server


def multiprocess_enabled() -> bool:
    return bool(_MULTIPROCESS_DIR)
