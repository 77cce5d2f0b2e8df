"""Strata's Python client, for pipelines, training scripts and CI.

    from strata_client import Client

    client = Client("https://strata.example.org", token)
    client.push("data/reviews", "reviews", message="weekly refresh", stage="cleaned")
    client.pull("reviews@1.2.0", "data/reviews-1.2.0")
    version_id = client.resolve("reviews@main")
    client.merge("reviews", "exp/relabel", key="id")

It needs no Django: only the standard library and Strata's store code
(``strata_store``: chunking, packs, hashing), which it shares with the server so
that both cut and name bytes identically.
"""

from __future__ import annotations

from strata_client.client import Client, PullResult, PushResult
from strata_client.errors import (
    AuthError,
    ClientError,
    Conflict,
    Forbidden,
    IntegrityError,
    MergeConflict,
    NotFound,
    Restoring,
    ServerError,
    StrataClientError,
    TransferError,
)

__all__ = [
    "AuthError",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "MergeConflict",
    "NotFound",
    "PullResult",
    "PushResult",
    "Restoring",
    "ServerError",
    "StrataClientError",
    "TransferError",
]
