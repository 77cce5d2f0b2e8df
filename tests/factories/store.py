"""Stored bytes damaged on purpose, as bit rot would."""

from __future__ import annotations

from pathlib import Path

from catalog.store import get_backend


def flip_pack_byte(pack_id: str, offset: int) -> None:
    """Flip one byte of a stored pack, on the local folder or on S3."""
    backend = get_backend()
    if hasattr(backend, "root"):
        path = Path(backend.root) / "packs" / pack_id[:2] / f"{pack_id}.pack"
        data = bytearray(path.read_bytes())
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
    else:  # S3: replace the object with a damaged copy, as bit rot would
        key = backend._key(pack_id)
        body = bytearray(backend.client.get_object(Bucket=backend.bucket, Key=key)["Body"].read())
        body[offset] ^= 0xFF
        backend.client.put_object(Bucket=backend.bucket, Key=key, Body=bytes(body))
