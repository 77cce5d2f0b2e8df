"""/healthz, /readyz and /metrics: for load balancers, Kubernetes and Prometheus.

None of them needs a signed-in user: probes and scrapers have none. /metrics may
ask for a token (STRATA_METRICS_TOKEN); the two probes say nothing secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ops import health
from ops.metrics import bearer_matches, web_registry

logger = logging.getLogger(__name__)

View = Callable[[HttpRequest], HttpResponse]


def probe(view: View) -> View:
    """Mark a view as a probe: the request middleware leaves the session alone
    and logs it at DEBUG, since it comes every few seconds."""
    view.strata_probe = True  # type: ignore[attr-defined]
    return view


@probe
@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing, so a slow database never
    gets a healthy process restarted."""
    return JsonResponse({"status": "ok"})


@probe
@never_cache
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database, Redis (when used) and the object store answer."""
    checks = health.readiness()
    failing = {name: reason for name, reason in checks.items() if reason != "ok"}
    if failing:
        logger.warning("not ready: %s", "; ".join(f"{name}: {reason}" for name, reason in failing.items()))
        return JsonResponse({"status": "unavailable", "checks": checks}, status=503)
    return JsonResponse({"status": "ready", "checks": checks})


@probe
@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of every process's metrics and the store's."""
    token = settings.STRATA_METRICS_TOKEN
    if token and not bearer_matches(request.headers.get("Authorization", ""), token):
        response = JsonResponse(
            {"error": "metrics need a token: send Authorization: Bearer <STRATA_METRICS_TOKEN>."}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(web_registry()), content_type=CONTENT_TYPE_LATEST)
