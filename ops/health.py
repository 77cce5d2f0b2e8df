"""Readiness checks: can this process serve requests right now?

Each check is cheap, reads only, and gives up within a couple of seconds, so a dead
dependency makes /readyz answer 503 quickly instead of hanging the probe. A check
returns None when all is well, or one sentence saying what is wrong (never a
secret: hosts and ports, not URLs with passwords).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from django.conf import settings

from catalog.store import get_backend

# How long a network check may wait for an answer.
REDIS_TIMEOUT_SECONDS = 1.0
STORE_TIMEOUT_SECONDS = 2.0


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200].rstrip(".")


def check_database() -> str | None:
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return f"the database did not answer a trivial query ({_short(error)})."
    return None


def redis_urls() -> list[str]:
    """Every Redis this deployment is configured to use: the broker (each of a
    failover list), a result backend, Redis caches."""
    candidates: list[str] = []
    for value in (settings.CELERY_BROKER_URL, getattr(settings, "CELERY_RESULT_BACKEND", "") or ""):
        candidates.extend(part.strip() for part in str(value).split(";"))
    for cache in settings.CACHES.values():
        if "redis" in str(cache.get("BACKEND", "")).lower():
            location = cache.get("LOCATION", "")
            candidates.extend([location] if isinstance(location, str) else list(location))
    urls = [url for url in candidates if urlparse(url).scheme in ("redis", "rediss")]
    return list(dict.fromkeys(urls))


def _where(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"


def check_redis(urls: list[str]) -> str | None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    for url in urls:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            # redis-py retries a failed connection three times with backoff by
            # default: a probe wants the first answer.
            retry=Retry(NoBackoff(), 0),
        )
        try:
            client.ping()
        except redis.RedisError as error:
            return (
                f"Redis at {_where(url)} did not answer within {REDIS_TIMEOUT_SECONDS:g} s ({_short(error)})."
            )
        finally:
            client.close()
    return None


def check_broker_folders() -> str | None:
    """The filesystem broker's folders must exist and be writable."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = options.get(key)
        if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            return f"the broker folder {folder} is missing or not writable."
    return None


_probe_clients: dict[tuple[str, str], Any] = {}
_probe_lock = threading.Lock()


def _probe_client(backend: Any) -> Any:
    """An S3 client like the backend's, but that tries once and waits at most
    STORE_TIMEOUT_SECONDS (the backend's own retries for minutes, rightly)."""
    import boto3
    from botocore.config import Config

    meta = backend.client.meta
    key = (meta.endpoint_url, meta.region_name)
    with _probe_lock:
        client = _probe_clients.get(key)
        if client is None:
            config = meta.config.merge(
                Config(
                    connect_timeout=STORE_TIMEOUT_SECONDS,
                    read_timeout=STORE_TIMEOUT_SECONDS,
                    retries={"mode": "standard", "max_attempts": 1},
                )
            )
            client = boto3.client(
                "s3", endpoint_url=meta.endpoint_url, region_name=meta.region_name, config=config
            )
            _probe_clients[key] = client
    return client


def check_store() -> str | None:
    """The object store: a local folder must be there and writable; a bucket must
    answer a one-key listing under the store's prefix (what the app may read)."""
    try:
        backend = get_backend()
    except Exception as error:  # a bad STORAGE_URL, a folder that cannot be made
        return f"the object store cannot be opened ({_short(error)})."
    bucket = getattr(backend, "bucket", None)
    if bucket is None:
        root = getattr(backend, "root", "")
        packs = os.path.join(root, "packs")
        if not (os.path.isdir(packs) and os.access(packs, os.W_OK)):
            return f"the store folder {root} is missing or not writable."
        return None
    prefix = getattr(backend, "prefix", "")
    try:
        _probe_client(backend).list_objects_v2(
            Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1
        )
    except Exception as error:  # botocore's errors have no common base worth naming
        return f"the bucket {bucket} did not answer a listing within {STORE_TIMEOUT_SECONDS:g} s ({_short(error)})."
    return None


def readiness() -> dict[str, str]:
    """Each check by name: "ok", or the sentence saying why it failed."""
    checks: dict[str, Callable[[], str | None]] = {"database": check_database}
    urls = redis_urls()
    if urls:
        checks["redis"] = lambda: check_redis(urls)
    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        checks["broker"] = check_broker_folders
    checks["store"] = check_store
    return {name: check() or "ok" for name, check in checks.items()}
