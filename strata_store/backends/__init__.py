"""Object backends: where pack bytes live. Chosen by a URL.

- ``file:///path/to/folder`` (or a plain path): a local folder.
- ``s3://bucket/prefix``: any S3 endpoint, through boto3, configured by the usual
  ``AWS_*`` variables and ``AWS_ENDPOINT_URL``.

Every backend offers the same small contract, which the rest of Strata relies on:
a pack appears whole or not at all; a pack once written is never changed; reading a
range returns exactly those bytes or raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlparse

from strata_store.errors import ConfigurationError

HOT, WARM, COLD = "hot", "warm", "cold"
TIERS = (HOT, WARM, COLD)


@dataclass(frozen=True, slots=True)
class RestoreState:
    """Whether a pack can be read now, and if not, when it is expected to be."""

    readable: bool
    restoring: bool = False
    ready_in_seconds: float | None = None


class Backend(Protocol):
    url: str

    def spool_dir(self) -> str:
        """A local folder where packs are written before `put_pack`."""

    def put_pack(self, pack_id: str, path: str) -> None:
        """Store the sealed pack at `path` under `pack_id`; consumes the file."""

    def read_range(self, pack_id: str, offset: int, length: int) -> bytes:
        """Return `length` bytes of pack `pack_id` from `offset`."""

    def read_tail(self, pack_id: str, length: int) -> bytes:
        """Return the last `length` bytes of the pack (or all of it, if shorter)."""

    def pack_size(self, pack_id: str) -> int | None:
        """The pack's size in bytes, or None if it is not stored."""

    def list_packs(self) -> Iterator[tuple[str, int]]:
        """Every stored pack as (pack id, size)."""

    def delete_pack(self, pack_id: str) -> None:
        """Remove a pack (garbage collection only)."""

    def promote_pack(self, source_id: str, pack_id: str) -> None:
        """Move the verified object `source_id` to the name `pack_id`, replacing
        whatever unverified bytes a client left under that name."""

    def quarantine_pack(self, pack_id: str) -> str:
        """Move a pack that failed verification out of the way, kept for
        inspection under a key that no reader uses; returns where it went."""

    def set_tier(self, pack_id: str, tier: str) -> None:
        """Move a pack to the hot, warm or cold tier (its bytes do not change)."""

    def tier_of(self, pack_id: str) -> str:
        """The tier a pack is stored in."""

    def request_restore(self, pack_id: str) -> RestoreState:
        """Ask for a cold pack to be made readable; idempotent."""

    def restore_state(self, pack_id: str) -> RestoreState:
        """Can the pack be read now?"""


def pack_key(pack_id: str) -> str:
    """The relative key of a pack: fanned out by its first two hex digits."""
    return f"packs/{pack_id[:2]}/{pack_id}.pack"


def open_backend(url: str, *, spool_dir: str | None = None, restore_seconds: float = 4 * 3600) -> Backend:
    """Open the backend a storage URL names."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        from strata_store.backends.local import LocalBackend  # it imports this module: a cycle at the top

        path = unquote(parsed.path if parsed.scheme else url)
        if parsed.scheme == "file" and parsed.netloc:
            # file://relative/path: netloc is the first path segment.
            path = parsed.netloc + path
        if not path:
            raise ConfigurationError(f"storage URL {url!r} names no folder")
        return LocalBackend(path, restore_seconds=restore_seconds)
    if parsed.scheme == "s3":
        from strata_store.backends.s3 import S3Backend  # it imports this module: a cycle at the top

        if not parsed.netloc:
            raise ConfigurationError(f"storage URL {url!r} names no bucket")
        return S3Backend(bucket=parsed.netloc, prefix=parsed.path.strip("/"), spool_dir=spool_dir)
    raise ConfigurationError(
        f"storage URL {url!r} is not supported: use file:///folder or s3://bucket/prefix"
    )
