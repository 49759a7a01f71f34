"""CloudFront invalidations: only what TTLs cannot cover, at most one in flight per channel.

Playlists carry max-age = half a segment, so routine updates need no invalidation. An ad break
inserted or cancelled, a channel reset or stop changes what players must see *now*, so those
invalidate the manifests. CloudFront allows 3,000 paths and 15 wildcard paths in flight per
distribution and bills paths beyond 1,000 a month, so:
- explicit paths (the manifests: 3 + 2 per rendition), a wildcard only for a reset;
- per channel, one invalidation in flight: while one runs, new paths are parked in PUB.pending
  and the next packager run sends them all in one request once it completed (coalescing).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from ..errors import StoreError, ValidationError, aws_error_code

MAX_PATHS = 3000
MAX_WILDCARDS = 15
REASONS = frozenset({"adbreak", "stop", "reset", "ended"})


class Cdn(Protocol):
    def invalidate(self, paths: list[str], caller_reference: str) -> str: ...

    def in_progress(self, invalidation_id: str) -> bool: ...


def manifest_paths(channel_id: str, renditions: Iterable[str]) -> list[str]:
    paths = [f"/{channel_id}/master.m3u8", f"/{channel_id}/dvr.m3u8", f"/{channel_id}/manifest.mpd"]
    for r in renditions:
        paths += [f"/{channel_id}/{r}/live.m3u8", f"/{channel_id}/{r}/dvr.m3u8"]
    return paths


def paths_for(reason: str, channel_id: str, renditions: Iterable[str]) -> list[str]:
    if reason not in REASONS:
        raise ValidationError(f"unknown invalidation reason {reason!r}; use one of {sorted(REASONS)}")
    if reason == "reset":
        # A reset restarts sequence numbers, so even "immutable" segment URLs change content.
        return [f"/{channel_id}/*"]
    return manifest_paths(channel_id, renditions)


def bounded(paths: Iterable[str]) -> list[str]:
    """Deduplicated, sorted, within CloudFront's per-request limits. If more than the limits are
    pending, collapse to per-channel wildcards (still correct, one path per channel)."""
    unique = sorted(set(paths))
    wildcards = [p for p in unique if p.endswith("*")]
    if len(unique) <= MAX_PATHS and len(wildcards) <= MAX_WILDCARDS:
        return unique
    channels = sorted({p.split("/")[1] for p in unique})
    return [f"/{c}/*" for c in channels][:MAX_WILDCARDS]


@dataclass(frozen=True)
class Decision:
    send: list[str]  # paths to invalidate now (empty: nothing to send)
    park: list[str]  # paths to keep pending (an invalidation is still in flight)


def decide(requested: Iterable[str], pending: Iterable[str], in_flight: bool) -> Decision:
    """Coalescing rule: while one is in flight, park everything; otherwise send all at once."""
    allp = bounded([*requested, *pending])
    if in_flight:
        return Decision(send=[], park=allp)
    return Decision(send=allp, park=[])


class CloudFrontCdn:
    """boto3 adapter; turns ClientError into StoreError."""

    def __init__(self, client: Any, distribution_id: str) -> None:
        self._client = client
        self._dist = distribution_id

    def invalidate(self, paths: list[str], caller_reference: str) -> str:
        try:
            resp = self._client.create_invalidation(
                DistributionId=self._dist,
                InvalidationBatch={
                    "Paths": {"Quantity": len(paths), "Items": paths},
                    "CallerReference": caller_reference or str(time.time_ns()),
                },
            )
        except ClientError as e:
            raise StoreError(f"CloudFront invalidation failed: {e}") from e
        return str(resp["Invalidation"]["Id"])

    def in_progress(self, invalidation_id: str) -> bool:
        try:
            resp = self._client.get_invalidation(DistributionId=self._dist, Id=invalidation_id)
        except ClientError as e:
            if aws_error_code(e) in ("NoSuchInvalidation", "NoSuchDistribution"):
                return False
            raise StoreError(f"CloudFront get_invalidation failed: {e}") from e
        return str(resp["Invalidation"]["Status"]) == "InProgress"
