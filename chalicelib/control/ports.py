"""Small protocols the control plane depends on; boto3 adapters and test fakes implement them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..errors import SlipstreamError
from ..records import utcnow
from ..settings import Settings


class StaleTokenError(SlipstreamError):
    """The task token no longer belongs to a waiting task (timed out, execution gone)."""


class Lifecycle(Protocol):
    """The channel's Step Functions execution, as the API sees it."""

    def start(self, name: str, channel_id: str, resume: bool = False) -> str:
        """Start the channel's execution (`resume`: continue a RUNNING channel); returns its ARN."""
        ...

    def send_command(self, token: str, command: str) -> None:
        """Complete the waiting `.waitForTaskToken` task with {"command": command}.

        Raises `StaleTokenError` when the token timed out or the execution is gone.
        """
        ...

    def stop(self, execution_arn: str, cause: str) -> None:
        """Stop an execution that no longer has a channel (best effort)."""
        ...


class Republisher(Protocol):
    """Re-render and publish the channel's manifests (implemented by chalicelib.pipeline.publish)."""

    def republish(self, channel_id: str, reason: str) -> None: ...


class Finalizer(Protocol):
    """chalicelib.pipeline.publish: `finalize` seals the current run on stop (its VOD: ENDLIST HLS and
    a static MPD on their own URLs; the live URLs stay open for the next run); `end` ends the live
    playlists for good (delete)."""

    def finalize(self, channel_id: str) -> None: ...

    def end(self, channel_id: str) -> None: ...


class UploadPresigner(Protocol):
    """Scoped, expiring PUT URLs for one object key each."""

    def presign_put(self, bucket: str, key: str, expires_in: int) -> str: ...


@dataclass(frozen=True)
class PlaybackGrant:
    """One signed CloudFront custom policy (a wildcard over a channel's objects), in both carriers.

    `policy` and `signature` are already in CloudFront's URL-safe base64 (+ -> -, = -> _, / -> ~),
    so the same strings are cookie values and query-string values."""

    resource: str  # e.g. https://dxxxx.cloudfront.net/news/*
    policy: str
    signature: str
    key_pair_id: str
    expires_at: datetime

    def cookies(self) -> dict[str, str]:
        return {"CloudFront-Policy": self.policy, "CloudFront-Signature": self.signature,
                "CloudFront-Key-Pair-Id": self.key_pair_id}

    def query(self) -> str:
        return f"Policy={self.policy}&Signature={self.signature}&Key-Pair-Id={self.key_pair_id}"


class PlaybackSigner(Protocol):
    """CloudFront custom-policy signatures (only when the stage configures a trusted key group)."""

    def grant(self, resource: str, expires_at: datetime) -> PlaybackGrant:
        """Sign a policy allowing GET of every URL matching `resource` (may end in `*`) until expires_at."""
        ...


class Metrics(Protocol):
    def input_gap(self, channel_id: str, seconds: float) -> None:
        """Record an input-loss observation (the stage's CloudWatch alarm watches this metric)."""
        ...


@dataclass
class Control:
    """Everything a control use case needs, built once by `chalicelib.root.control()`."""

    settings: Settings
    store: Any  # chalicelib.control.store.ChannelStore (Any keeps this module free of boto3 imports)
    lifecycle: Lifecycle
    republisher: Republisher
    finalizer: Finalizer
    presigner: UploadPresigner
    metrics: Metrics
    signer: PlaybackSigner | None = None
    signed_url_ttl: int = 3600
    clock: Callable[[], datetime] = field(default=utcnow)
