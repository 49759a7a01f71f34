"""Frozen, validated settings built from the environment (set per stage in .chalice/config.json)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ValidationError


def _float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"setting {key}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ValidationError(f"setting {key}={value} outside [{lo}, {hi}]")
    return value


def _input_loss(env: Mapping[str, str]) -> float | None:
    """INPUT_LOSS_WAIT: seconds (0.5-120), or 0 / "off" to turn input-loss slating off; unset: the default."""
    raw = env.get("INPUT_LOSS_WAIT", "").strip()
    if not raw:
        return None
    if raw.lower() == "off" or raw in ("0", "0.0"):
        return 0.0
    return _float(env, "INPUT_LOSS_WAIT", 3.0, 0.5, 120.0)


@dataclass(frozen=True)
class Settings:
    stage: str
    table_name: str
    ingest_bucket: str
    origin_bucket: str
    transcode_queue_url: str
    package_queue_url: str
    state_machine_arn: str
    distribution_id: str  # empty: no CDN (local runs)
    playback_base_url: str  # public base of the origin/CDN, e.g. https://dxxxx.cloudfront.net
    ladder: str  # key into chalicelib.media.ladder.LADDERS
    segment_duration: float
    live_window: float
    dvr_window: float
    gap_deadline: float  # seconds a missing predecessor may hold up publishing before it becomes a GAP
    api_keys: frozenset[str]  # empty: auth delegated to API Gateway (IAM / usage-plan keys)
    ingest_url_ttl: int
    metrics_namespace: str = "Slipstream"
    # Signed playback URLs: only where the stage configures a CloudFront key pair; the private key
    # lives in an SSM SecureString, never in the environment.
    cloudfront_key_pair_id: str = ""
    cloudfront_private_key_parameter: str = ""
    signed_url_ttl: int = 3600
    # Seconds a later chunk that is ready waits for a missing one before its slot gets slate
    # (None: one segment duration).
    slate_wait: float | None = None
    # Seconds past its due time a never-received chunk waits before its slot is slated with no later chunk
    # ready (input loss). None or 0: off (a channel may still set its own).
    input_loss_wait: float | None = None
    # Domain attribute of the signed cookies: the parent domain shared by the API (or player page)
    # and the CDN hostname, e.g. example.com for api.example.com + video.example.com. Empty: host-only.
    playback_cookie_domain: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [k for k in ("TABLE_NAME", "INGEST_BUCKET", "ORIGIN_BUCKET") if not env.get(k)]
        if missing:
            raise ValidationError(f"missing settings: {', '.join(missing)}")
        return cls(
            stage=env.get("STAGE", "dev"),
            table_name=env["TABLE_NAME"],
            ingest_bucket=env["INGEST_BUCKET"],
            origin_bucket=env["ORIGIN_BUCKET"],
            transcode_queue_url=env.get("TRANSCODE_QUEUE_URL", ""),
            package_queue_url=env.get("PACKAGE_QUEUE_URL", ""),
            state_machine_arn=env.get("STATE_MACHINE_ARN", ""),
            distribution_id=env.get("DISTRIBUTION_ID", ""),
            playback_base_url=env.get("PLAYBACK_BASE_URL", "").rstrip("/"),
            ladder=env.get("LADDER", "default"),
            segment_duration=_float(env, "SEGMENT_DURATION", 2.0, 0.5, 12.0),
            live_window=_float(env, "LIVE_WINDOW", 30.0, 6.0, 3600.0),
            dvr_window=_float(env, "DVR_WINDOW", 7200.0, 6.0, 86400.0),
            gap_deadline=_float(env, "GAP_DEADLINE", 20.0, 1.0, 600.0),
            api_keys=frozenset(k for k in env.get("API_KEYS", "").split(",") if k),
            ingest_url_ttl=int(_float(env, "INGEST_URL_TTL", 3600, 60, 86400)),
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE", "Slipstream"),
            cloudfront_key_pair_id=env.get("CLOUDFRONT_KEY_PAIR_ID", ""),
            cloudfront_private_key_parameter=env.get("CLOUDFRONT_PRIVATE_KEY_PARAMETER", ""),
            signed_url_ttl=int(_float(env, "SIGNED_URL_TTL", 3600, 60, 7 * 86400)),
            slate_wait=_float(env, "SLATE_WAIT", 2.0, 0.2, 120.0) if env.get("SLATE_WAIT") else None,
            playback_cookie_domain=env.get("PLAYBACK_COOKIE_DOMAIN", ""),
            input_loss_wait=_input_loss(env),
        )
