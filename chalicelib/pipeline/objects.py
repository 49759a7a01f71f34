"""S3 object store port + boto3 adapter, with the origin's caching rules in one place."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..errors import NotFoundError, StoreError, aws_error_code

# MediaPackage's recommendations (DESIGN.md "Caching"): segments never change once written.
IMMUTABLE = "public, max-age=1209600, immutable"


def playlist_cache_control(segment_duration: float) -> str:
    """Half a segment, at least 1 s: a new playlist version is visible within 0.5-1.5 x target."""
    return f"public, max-age={max(1, round(segment_duration / 2))}"


def content_type(key: str, rendition: str = "", audio_name: str = "audio") -> str:
    if key.endswith(".m3u8"):
        return "application/vnd.apple.mpegurl"
    if key.endswith(".mpd"):
        return "application/dash+xml"
    if key.endswith(".m4s"):
        return "audio/mp4" if rendition == audio_name else "video/mp4"
    if key.endswith(".mp4"):
        return "audio/mp4" if rendition == audio_name and not key.endswith("init.mp4") else "video/mp4"
    return "application/octet-stream"


class ObjectStore(Protocol):
    def download(self, bucket: str, key: str, path: Path, *, version_id: str = "", etag: str = "") -> None: ...

    def get(self, bucket: str, key: str) -> bytes | None: ...

    def put(self, bucket: str, key: str, body: bytes, content_type: str, cache_control: str) -> None: ...

    def put_new(self, bucket: str, key: str, body: bytes, content_type: str, cache_control: str) -> bool: ...

    def etag(self, bucket: str, key: str) -> str | None: ...

    def modified(self, bucket: str, key: str) -> datetime | None: ...


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def download(self, bucket: str, key: str, path: Path, *, version_id: str = "", etag: str = "") -> None:
        """Exactly the bytes ingest accepted: that object version (a versioned ingest bucket), or the
        object only while its ETag is still the accepted one (IfMatch). A conflicting re-upload can
        then neither be transcoded in its place nor poison a retry or a DLQ replay."""
        extra: dict[str, Any] = {}
        if version_id and version_id != "null":
            extra["VersionId"] = version_id
        elif etag:
            extra["IfMatch"] = f'"{etag}"'
        try:
            resp = self._s3.get_object(Bucket=bucket, Key=key, **extra)
            with open(path, "wb") as f:
                for part in iter(lambda: resp["Body"].read(1 << 20), b""):
                    f.write(part)
        except ClientError as e:
            code = aws_error_code(e)
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                raise NotFoundError(f"s3://{bucket}/{key} does not exist") from e
            if code in ("412", "PreconditionFailed"):
                raise NotFoundError(f"s3://{bucket}/{key} was replaced after it was accepted (ETag {etag})") from e
            raise StoreError(f"download of s3://{bucket}/{key} failed: {e}") from e

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as e:
            if aws_error_code(e) in ("404", "403", "NoSuchKey", "NotFound", "Forbidden"):
                return None
            raise StoreError(f"read of s3://{bucket}/{key} failed: {e}") from e

    def put_new(self, bucket: str, key: str, body: bytes, content_type: str, cache_control: str) -> bool:
        """Write-once (If-None-Match: *): segments and init segments are immutable for 14 days, so the
        first writer wins and nothing ever replaces them. False: the object already existed."""
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                                CacheControl=cache_control, IfNoneMatch="*")
            return True
        except ClientError as e:
            if aws_error_code(e) in ("412", "PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise StoreError(f"upload of s3://{bucket}/{key} failed: {e}") from e

    def put(self, bucket: str, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                                CacheControl=cache_control)
        except ClientError as e:
            raise StoreError(f"upload of s3://{bucket}/{key} failed: {e}") from e

    def etag(self, bucket: str, key: str) -> str | None:
        try:
            return str(self._s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
        except ClientError as e:
            # Without s3:ListBucket, S3 answers 403 (not 404) for a missing key. Either way the
            # caller re-uploads, which is safe: init segments are byte-identical per channel.
            if aws_error_code(e) in ("404", "403", "NoSuchKey", "NotFound", "Forbidden"):
                return None
            raise StoreError(f"head of s3://{bucket}/{key} failed: {e}") from e


    def modified(self, bucket: str, key: str) -> datetime | None:
        """When the object was last written (S3's Last-Modified, whole seconds), None if there is none."""
        try:
            got = self._s3.head_object(Bucket=bucket, Key=key)["LastModified"]
        except ClientError as e:
            if aws_error_code(e) in ("404", "403", "NoSuchKey", "NotFound", "Forbidden"):
                return None
            raise StoreError(f"head of s3://{bucket}/{key} failed: {e}") from e
        return got if got.tzinfo is not None else got.replace(tzinfo=UTC)


def md5_hex(body: bytes) -> str:
    """S3's ETag of a single-part upload, to skip re-uploading an unchanged init segment."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()
