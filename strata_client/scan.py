"""Listing what a push will store: the store's own scan (``strata_store.scan``), by
the rules the server checks again when it commits; checking here saves a wasted
upload. A path that cannot be pushed is a ClientError with the scan's sentence.
"""

from __future__ import annotations

from strata_client.errors import ClientError
from strata_store.scan import Scan, ScanError, ScannedFile, scan_fingerprint
from strata_store.scan import scan as store_scan

__all__ = ["Scan", "ScannedFile", "scan", "scan_fingerprint"]


def scan(path: str) -> Scan:
    """What pushing `path` would store."""
    try:
        return store_scan(path)
    except ScanError as error:
        raise ClientError(str(error)) from None
