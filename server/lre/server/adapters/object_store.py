"""S3-compatible object storage (Ceph RGW, MinIO, SeaweedFS, AWS S3) through
boto3: multipart uploads, ranged reads, Object Lock retention and legal hold,
deletion of every version. Every failure of the store reaches the callers as
the domain's DependencyUnavailable (a caller may retry), never a botocore
type; the metrics count requests, bytes, errors and latency by operation."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import Counter, Gauge, Histogram

from lre.runtime import config
from lre.server.adapters.object_upload import MultipartUpload
from lre.server.domain.errors import DependencyUnavailable

logger = logging.getLogger("lre.server")

REQUESTS = Counter(
    "lre_object_store_requests",
    "Requests to the object store, by operation and outcome (ok, error).",
    ["operation", "outcome"],
)
BYTES = Counter(
    "lre_object_store_bytes", "Bytes sent to and read from the object store.", ["direction"]
)
LATENCY = Histogram(
    "lre_object_store_request_seconds",
    "Time of a request to the object store, by operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# By bucket, so that a server keeping content in its database exposes no
# series (an unlabelled gauge would show 0 there, and page).
UP = Gauge(
    "lre_object_store_up",
    "1 while the object store answers with this server's credentials.",
    ["bucket"],
    multiprocess_mode="livemin",
)

T = TypeVar("T")
# A ranged read's size: what a download holds of an object at once.
READ_BYTES = 2 * 1024 * 1024
# Error codes that say the credentials, not the store, are wrong.
_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}


@dataclass(frozen=True)
class ObjectStoreSettings:
    endpoint_url: str
    bucket: str
    region: str
    access_key: str
    secret_key: str
    path_style: bool = False
    ca_file: Path | None = None
    # Each request's connection and read timeouts: a slow store fails a call
    # rather than holding a thread.
    timeout_s: float = 10.0
    # COMPLIANCE (nobody may shorten or remove it, the root account neither)
    # or GOVERNANCE (a privileged user may); None: the bucket has no Object Lock.
    lock_mode: str | None = "COMPLIANCE"


def object_store_settings(settings: Any) -> ObjectStoreSettings | None:
    """The object store of the server's settings (config.ServerSettings); None
    when content stays in the database."""
    kind = settings.content_store.strip().lower()
    if kind == "database":
        return None
    if kind != "s3":
        raise config.ConfigError("LRE_SERVER_CONTENT_STORE: database or s3")
    if not settings.s3_bucket:
        raise config.ConfigError("LRE_SERVER_S3_BUCKET: required with content_store = s3")
    access = config.read_secret(settings.s3_access_key_file, "LRE_SERVER_S3_ACCESS_KEY")
    secret = config.read_secret(settings.s3_secret_key_file, "LRE_SERVER_S3_SECRET_KEY")
    if not access or not secret:
        raise config.ConfigError(
            "LRE_SERVER_S3_ACCESS_KEY_FILE and LRE_SERVER_S3_SECRET_KEY_FILE: required"
            " with content_store = s3"
        )
    mode = settings.s3_object_lock.strip().upper()
    if mode not in ("COMPLIANCE", "GOVERNANCE", "NONE"):
        raise config.ConfigError("LRE_SERVER_S3_OBJECT_LOCK: COMPLIANCE, GOVERNANCE or none")
    return ObjectStoreSettings(
        endpoint_url=settings.s3_endpoint_url,
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        access_key=access,
        secret_key=secret,
        path_style=settings.s3_path_style,
        ca_file=settings.s3_ca_file,
        timeout_s=settings.s3_timeout_s,
        lock_mode=None if mode == "NONE" else mode,
    )


def _reason(exc: Exception) -> str:
    """What went wrong, in words fit for a log or a health reason: no key, no secret."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "error"))
        if code in _CREDENTIALS:
            return f"the object store refused this server's credentials ({code})"
        if code in ("NoSuchBucket", "404"):
            return "the object store has no such bucket"
        return f"the object store answered {code}"
    return f"the object store is unreachable ({type(exc).__name__})"


def _no_continue(model: Any, params: Any, **_: Any) -> None:
    """A small object goes in one PutObject (large ones in parts): asking the
    store for "100 Continue" before its body costs it a round trip and
    spares it nothing."""
    if model.name == "PutObject":
        params["headers"].pop("Expect", None)


class ObjectStore:
    """One bucket of an S3-compatible store. Thread-safe (one boto3 client)."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        # Imported where a store is configured: boto3's sessions and service
        # models are a part of a second of every server start without one.
        import boto3

        self.settings = settings
        self.bucket = settings.bucket
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url or None,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            verify=str(settings.ca_file) if settings.ca_file else None,
            config=Config(
                s3={"addressing_style": "path" if settings.path_style else "auto"},
                connect_timeout=settings.timeout_s,
                read_timeout=settings.timeout_s,
                # One quick retry for a dropped connection; the callers retry beyond.
                retries={"max_attempts": 2, "mode": "standard"},
                max_pool_connections=32,
                # No CRC32 of every body on top of SigV4's SHA-256 (and TLS's
                # integrity): checksums only where the API requires them.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self._client.meta.events.register_last("before-call.s3", _no_continue)
        # Parts of large uploads sent while the next one fills (PARTS_IN_FLIGHT each).
        self._parts = ThreadPoolExecutor(16, thread_name_prefix="object-parts")

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            result = call()
        except (BotoCoreError, ClientError) as exc:
            REQUESTS.labels(operation, "error").inc()
            LATENCY.labels(operation).observe(time.perf_counter() - start)
            reason = _reason(exc)
            logger.warning("object store", extra={"operation": operation, "reason": reason})
            raise DependencyUnavailable(reason) from None
        REQUESTS.labels(operation, "ok").inc()
        LATENCY.labels(operation).observe(time.perf_counter() - start)
        return result

    # -- health ------------------------------------------------------------------

    def problem(self) -> str | None:
        """None while the bucket answers a listing with these credentials;
        otherwise why not."""
        try:
            self._client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except (BotoCoreError, ClientError) as exc:
            UP.labels(self.bucket).set(0)
            return _reason(exc)
        UP.labels(self.bucket).set(1)
        return None

    # -- writing -----------------------------------------------------------------

    def upload(self, key: str) -> MultipartUpload:
        return MultipartUpload(self, key, self._parts)

    def put(self, key: str, data: bytes) -> None:
        """A small object in one request."""
        self._call(
            "put_object",
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data),
        )
        BYTES.labels("out").inc(len(data))

    def start_upload(self, key: str) -> str:
        answer = self._call(
            "create_multipart_upload",
            lambda: self._client.create_multipart_upload(Bucket=self.bucket, Key=key),
        )
        return str(answer["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        answer = self._call(
            "upload_part",
            lambda: self._client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            ),
        )
        BYTES.labels("out").inc(len(data))
        return str(answer["ETag"])

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts: Any = [{"ETag": e, "PartNumber": i} for i, e in enumerate(etags, 1)]
        self._call(
            "complete_multipart_upload",
            lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            ),
        )

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._call(
            "abort_multipart_upload",
            lambda: self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            ),
        )

    def abort_uploads(self, key: str) -> None:
        """Aborts every unfinished upload of ``key`` (a process that died mid-upload left one)."""
        answer = self._call(
            "list_multipart_uploads",
            lambda: self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=key),
        )
        for upload in answer.get("Uploads", []):
            if upload.get("Key") == key:
                self.abort_upload(key, str(upload["UploadId"]))

    # -- reading -----------------------------------------------------------------

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except DependencyUnavailable as exc:
            if "no such" in str(exc) or "404" in str(exc):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        answer = self._call(
            "head_object", lambda: self._client.head_object(Bucket=self.bucket, Key=key)
        )
        return int(answer["ContentLength"])

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the object."""

        def read() -> bytes:
            answer = self._client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
            )
            return bytes(answer["Body"].read())

        data = self._call("get_object", read)
        BYTES.labels("in").inc(len(data))
        return data

    def ranges(self, key: str, step: int = READ_BYTES) -> Iterator[bytes]:
        """The object in ranged reads of ``step`` bytes, so that no read holds
        the whole object and a failure costs one range."""
        size = self.size(key)
        for start in range(0, size, step):
            yield self.read_range(key, start, min(size, start + step))

    def keys(self, prefix: str) -> list[str]:
        """Every object's key under ``prefix`` (the bucket's listing, all pages)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        listed = self._call("list_objects", lambda: list(pages))
        return [str(item["Key"]) for page in listed for item in page.get("Contents", [])]

    # -- retention ---------------------------------------------------------------

    def retain(self, key: str, until: dt.datetime) -> None:
        """Object Lock on the object's current version until ``until`` (no
        effect without a lock mode: a bucket without Object Lock)."""
        mode = self.settings.lock_mode
        if mode is None:
            return
        retention: Any = {"Mode": mode, "RetainUntilDate": until}
        self._call(
            "put_object_retention",
            lambda: self._client.put_object_retention(
                Bucket=self.bucket, Key=key, Retention=retention
            ),
        )

    def retention(self, key: str) -> dt.datetime | None:
        """The object's retain-until date, None without one."""
        try:
            answer = self._client.get_object_retention(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if "NoSuchObjectLockConfiguration" in str(exc) or "ObjectLockConfiguration" in str(exc):
                return None
            raise DependencyUnavailable(_reason(exc)) from None
        except BotoCoreError as exc:
            raise DependencyUnavailable(_reason(exc)) from None
        until = answer.get("Retention", {}).get("RetainUntilDate")
        return until.astimezone(dt.UTC) if until else None

    @property
    def locking(self) -> bool:
        """Whether objects get a retention (the bucket has Object Lock)."""
        return self.settings.lock_mode is not None

    def held(self, key: str) -> bool:
        answer = self._call(
            "get_object_legal_hold",
            lambda: self._client.get_object_legal_hold(Bucket=self.bucket, Key=key),
        )
        return bool(answer.get("LegalHold", {}).get("Status") == "ON")

    def versions(self, key: str) -> list[str]:
        """The ids of the object's versions and delete markers."""
        answer = self._call(
            "list_object_versions",
            lambda: self._client.list_object_versions(Bucket=self.bucket, Prefix=key),
        )
        return [
            str(v["VersionId"])
            for v in [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]
            if v.get("Key") == key
        ]

    def unfinished(self, prefix: str = "") -> list[str]:
        """Keys of the multipart uploads begun and neither completed nor aborted."""
        answer = self._call(
            "list_multipart_uploads",
            lambda: self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix),
        )
        return [str(u["Key"]) for u in answer.get("Uploads", [])]

    def hold(self, key: str, on: bool) -> None:
        if self.settings.lock_mode is None:
            return
        self._call(
            "put_object_legal_hold",
            lambda: self._client.put_object_legal_hold(
                Bucket=self.bucket, Key=key, LegalHold={"Status": "ON" if on else "OFF"}
            ),
        )

    def delete(self, key: str) -> None:
        """Every version of the object (on a versioned bucket a plain delete
        only adds a delete marker and the content stays). The store refuses a
        locked version: DependencyUnavailable then, and the object stays. An
        unversioned bucket lists its objects' one version as "null"; a key
        with no version is left alone (a plain delete would add a marker)."""
        versions = self.versions(key)
        for version_id in versions:
            self._call(
                "delete_object",
                lambda v=version_id: self._client.delete_object(  # type: ignore[misc]
                    Bucket=self.bucket, Key=key, VersionId=v
                ),
            )
