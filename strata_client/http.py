"""HTTP for the client, on the standard library alone (urllib), so the client
installs anywhere a pipeline runs. JSON calls to the API, and raw PUT/GET of pack
bytes to the URLs the API hands out (S3 presigned URLs, or the server's own).

Retries: GETs, and POSTs the protocol makes safe to repeat (they carry an
Idempotency-Key or are idempotent by design), are retried with backoff on a
dropped connection or a 502/503/504.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO

from strata_client.errors import ClientError, Restoring, TransferError, error_from_answer

_RETRY_STATUS = {502, 503, 504}
_ATTEMPTS = 4


class Transport:
    """JSON requests to one Strata server's API, with a bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 120.0) -> None:
        base = base_url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        parsed = urllib.parse.urlparse(base)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(f"{base_url!r} is not a server address: use http(s)://host[:port].")
        self.base = base
        self.token = token
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry: bool | None = None,
    ) -> tuple[int, Any]:
        """Send one API request; return (status, decoded JSON) or raise the error."""
        url = self.base + urllib.parse.quote(path, safe="/@:")
        if params:
            query = {key: value for key, value in params.items() if value is not None}
            if query:
                url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        may_retry = method == "GET" if retry is None else retry
        for attempt in range(_ATTEMPTS):
            request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                    return response.status, (json.loads(raw) if raw else None)
            except urllib.error.HTTPError as error:
                answer = error_from_answer(error.code, error.read(), error.headers.get("Retry-After"))
                # A 503 that says the data is being restored is not an outage: not retried.
                transient = may_retry and error.code in _RETRY_STATUS and not isinstance(answer, Restoring)
                if transient and attempt + 1 < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise answer from None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
                if may_retry and attempt + 1 < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                reason = getattr(error, "reason", error)
                raise TransferError(f"cannot reach the Strata server at {self.base}: {reason}.") from None
        raise AssertionError("unreachable")


def put_file(url: str, path: str, size: int, headers: dict[str, str], *, timeout: float = 600.0) -> bool:
    """PUT a file's bytes to a presigned URL. Returns False when the object already
    exists (412 to If-None-Match: same name, same bytes, so nothing to do)."""
    for attempt in range(_ATTEMPTS):
        with open(path, "rb") as handle:
            request = urllib.request.Request(
                url, data=handle, method="PUT", headers={**headers, "Content-Length": str(size)}
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read()
                    return True
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode("utf-8", "replace")
                if error.code == 412:
                    return False
                if error.code in _RETRY_STATUS and attempt + 1 < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise TransferError(
                    f"the store refused a pack upload ({error.code}): {_brief(detail)}"
                ) from None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
                if attempt + 1 < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise TransferError(f"cannot upload a pack: {getattr(error, 'reason', error)}.") from None
    raise AssertionError("unreachable")


def get_bytes(url: str, headers: dict[str, str], length: int, *, timeout: float = 600.0) -> bytes:
    """GET exactly `length` bytes from a signed URL (a span of a pack)."""
    for attempt in range(_ATTEMPTS):
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = _read_all(response, length)
            if len(data) != length:
                raise TransferError(f"a pack read returned {len(data)} bytes instead of {length}.")
            return data
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            if error.code in _RETRY_STATUS and attempt + 1 < _ATTEMPTS:
                time.sleep(0.5 * 2**attempt)
                continue
            raise TransferError(f"the store refused a pack read ({error.code}): {_brief(detail)}") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
            if attempt + 1 < _ATTEMPTS:
                time.sleep(0.5 * 2**attempt)
                continue
            raise TransferError(f"cannot read a pack: {getattr(error, 'reason', error)}.") from None
    raise AssertionError("unreachable")


def _read_all(response: BinaryIO, length: int) -> bytes:
    parts = []
    remaining = length + 1  # one more than expected, to notice a longer answer
    while remaining > 0:
        block = response.read(min(remaining, 1 << 20))
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def _brief(detail: str) -> str:
    try:
        payload = json.loads(detail)
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            return payload["error"]
    except ValueError:
        pass
    import re

    code = re.search(r"<Code>([^<]+)</Code>", detail)
    message = re.search(r"<Message>([^<]+)</Message>", detail)
    if code:
        return f"{code.group(1)}: {message.group(1) if message else ''}".strip()
    return detail.strip() or "no detail"
