"""S3 (or any S3-compatible endpoint) as the object store, through boto3.

Credentials and endpoint come from the standard ``AWS_*`` variables and
``AWS_ENDPOINT_URL``. Uploads carry a Content-MD5 so the server rejects bytes damaged
in transit, and ``If-None-Match: *`` so an existing pack is never overwritten.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator

from strata_store.backends import COLD, HOT, TIERS, WARM, RestoreState, pack_key
from strata_store.errors import ConfigurationError, MissingObject, ObjectRestoring, StoreError

# Storage classes of each tier; a deployment may choose others (e.g. DEEP_ARCHIVE).
DEFAULT_CLASSES = {HOT: "STANDARD", WARM: "STANDARD_IA", COLD: "GLACIER"}
# A standard Glacier Flexible Retrieval takes 3-5 hours (AWS documentation).
GLACIER_RESTORE_SECONDS = 4 * 3600


class S3Backend:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        spool_dir: str | None = None,
        storage_classes: dict[str, str] | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._spool = spool_dir or tempfile.gettempdir()
        os.makedirs(self._spool, exist_ok=True)
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=16,
            # Checksums are sent as Content-MD5 below; the newer trailing checksums
            # are not understood by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client = boto3.client("s3", config=config)
        self.storage_classes = dict(DEFAULT_CLASSES, **(storage_classes or {}))

    def __repr__(self) -> str:
        return f"S3Backend({self.url!r})"

    def _key(self, pack_id: str) -> str:
        key = pack_key(pack_id)
        return f"{self.prefix}/{key}" if self.prefix else key

    def spool_dir(self) -> str:
        return self._spool

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (used by setup and tests)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as error:
                raise ConfigurationError(f"cannot create bucket {self.bucket}: {error}") from None

    def put_pack(self, pack_id: str, path: str) -> None:
        from botocore.exceptions import ClientError

        md5 = hashlib.md5()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                md5.update(block)
        content_md5 = base64.b64encode(md5.digest()).decode()

        def put(**condition: str) -> None:
            with open(path, "rb") as handle:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(pack_id),
                    Body=handle,
                    ContentMD5=content_md5,
                    **condition,
                )

        try:
            put(IfNoneMatch="*")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in ("PreconditionFailed", "412"):
                raise StoreError(f"could not store pack {pack_id}: {error}") from None
            # Another push stored a pack of this name first. A pack's name pins its
            # index, not its payload: if the stored object's MD5 differs from ours
            # (bytes a client left there, forged or never verified), replace it, or
            # every chunk indexed here would point at them.
            if not self._holds(pack_id, md5.hexdigest()):
                put()
        finally:
            os.unlink(path)

    def _holds(self, pack_id: str, md5_hex: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(pack_id))
        except ClientError:
            return False
        return str(head.get("ETag", "")).strip('"') == md5_hex

    def _get(self, pack_id: str, byte_range: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(pack_id), Range=byte_range)
            return response["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise MissingObject("pack", pack_id) from None
            if code == "InvalidObjectState":
                # An archived object: readable only after a restore.
                state = self.request_restore(pack_id)
                raise ObjectRestoring(pack_id, state.ready_in_seconds) from None
            raise StoreError(f"could not read pack {pack_id}: {error}") from None

    def read_range(self, pack_id: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return self._get(pack_id, f"bytes={offset}-{offset + length - 1}")

    def read_tail(self, pack_id: str, length: int) -> bytes:
        return self._get(pack_id, f"bytes=-{length}")

    def pack_size(self, pack_id: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(pack_id))
        except ClientError:
            return None
        return int(head["ContentLength"])

    def list_packs(self) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/packs/" if self.prefix else "packs/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if name.endswith(".pack"):
                    yield name[: -len(".pack")], int(item["Size"])

    def promote_pack(self, source_id: str, pack_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(pack_id),
                CopySource={"Bucket": self.bucket, "Key": self._key(source_id)},
            )
        except ClientError as error:
            raise StoreError(f"could not store pack {pack_id}: {error}") from None
        self.client.delete_object(Bucket=self.bucket, Key=self._key(source_id))

    def quarantine_pack(self, pack_id: str) -> str:
        from botocore.exceptions import ClientError

        key = self._key(pack_id)
        prefix = f"{self.prefix}/quarantine" if self.prefix else "quarantine"
        target = f"{prefix}/{pack_id}-{int(time.time())}.pack"
        try:
            self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key}
            )
        except ClientError as error:
            raise StoreError(f"could not quarantine pack {pack_id}: {error}") from None
        self.client.delete_object(Bucket=self.bucket, Key=key)
        return target

    def delete_pack(self, pack_id: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(pack_id))

    # -- tiers ---------------------------------------------------------------------

    def set_tier(self, pack_id: str, tier: str) -> None:
        """Change the object's storage class by a server-side copy onto itself."""
        from botocore.exceptions import ClientError

        if tier not in TIERS:
            raise StoreError(f"{tier!r} is not a tier")
        key = self._key(pack_id)
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                StorageClass=self.storage_classes[tier],
                MetadataDirective="REPLACE",
            )
        except ClientError as error:
            raise StoreError(f"could not move pack {pack_id} to {tier}: {error}") from None

    def tier_of(self, pack_id: str) -> str:
        head = self.client.head_object(Bucket=self.bucket, Key=self._key(pack_id))
        storage_class = head.get("StorageClass", "STANDARD")
        for tier, name in self.storage_classes.items():
            if name == storage_class:
                return tier
        return COLD if storage_class in ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR") else WARM

    def restore_state(self, pack_id: str) -> RestoreState:
        from botocore.exceptions import ClientError

        head = self.client.head_object(Bucket=self.bucket, Key=self._key(pack_id))
        if head.get("StorageClass", "STANDARD") not in ("GLACIER", "DEEP_ARCHIVE"):
            return RestoreState(readable=True)
        restore = head.get("Restore")
        if restore and 'ongoing-request="false"' in restore:
            return RestoreState(readable=True)
        if restore and 'ongoing-request="true"' in restore:
            return RestoreState(readable=False, restoring=True, ready_in_seconds=GLACIER_RESTORE_SECONDS)
        # Some S3-compatible servers keep archived objects readable: ask.
        try:
            self.client.get_object(Bucket=self.bucket, Key=self._key(pack_id), Range="bytes=0-0")[
                "Body"
            ].read()
            return RestoreState(readable=True)
        except ClientError:
            return RestoreState(readable=False)

    def request_restore(self, pack_id: str) -> RestoreState:
        from botocore.exceptions import ClientError

        try:
            self.client.restore_object(
                Bucket=self.bucket,
                Key=self._key(pack_id),
                RestoreRequest={"Days": 7, "GlacierJobParameters": {"Tier": "Standard"}},
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in (
                "RestoreAlreadyInProgress",
                "MethodNotAllowed",
                "NotImplemented",
                "InvalidObjectState",
            ):
                raise StoreError(f"could not restore pack {pack_id}: {error}") from None
        return self.restore_state(pack_id)
