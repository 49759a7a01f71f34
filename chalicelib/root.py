"""The one composition root: lazy, cached factories. No module-level boto3 clients.

boto3 honours AWS_ENDPOINT_URL, so the same code talks to AWS, moto or LocalStack.
Each area adds the factories for its own services in its own section below.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .settings import Settings


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def client(service: str) -> Any:
    import boto3  # imported lazily: the pure core and cold paths never pay for it

    return boto3.client(service)


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    settings.cache_clear()
    client.cache_clear()
    for f in _RESETTABLE:
        f.cache_clear()


_RESETTABLE: list[Any] = []


def resettable(f: Any) -> Any:
    """Register a cached factory so `reset()` clears it too."""
    _RESETTABLE.append(f)
    return f


# --- pipeline factories (chalicelib/pipeline) ---


@resettable
@cache
def dynamodb_table() -> Any:
    import boto3

    return boto3.resource("dynamodb").Table(settings().table_name)


@resettable
@cache
def pipeline_store() -> Any:
    from .pipeline.store import PipelineStore

    return PipelineStore(dynamodb_table())


@resettable
@cache
def object_store() -> Any:
    from .pipeline.objects import S3ObjectStore

    return S3ObjectStore(client("s3"))


@resettable
@cache
def cdn() -> Any:
    """The CloudFront adapter, or None when the stage has no distribution (local runs)."""
    from .pipeline.cdn import CloudFrontCdn

    dist = settings().distribution_id
    return CloudFrontCdn(client("cloudfront"), dist) if dist else None


@resettable
@cache
def idempotency_store() -> Any:
    """Powertools Idempotency persistence on the pipeline table (one per process: it holds a client)."""
    from .pipeline.ingest import idempotency_layer

    return idempotency_layer(settings().table_name)


# --- control factories (chalicelib/control) ---


@resettable
@cache
def presign_s3_client() -> Any:
    """S3 client that presigns with SigV4 (X-Amz-Expires; SigV2 URLs are refused in new regions)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


@resettable
@cache
def control() -> Any:
    """The control plane's ports. Pipeline functions are resolved on first use (lazy import), so
    the API runs (and is testable) without the pipeline package being importable."""
    from . import obs
    from .control.adapters import (
        CloudFrontPolicySigner,
        EmfMetrics,
        LazyPort,
        S3UploadPresigner,
        StepFunctionsLifecycle,
    )
    from .control.ports import Control
    from .control.store import ChannelStore

    s = settings()
    signer = None
    if s.cloudfront_key_pair_id and s.cloudfront_private_key_parameter:
        param = client("ssm").get_parameter(Name=s.cloudfront_private_key_parameter, WithDecryption=True)
        signer = CloudFrontPolicySigner(s.cloudfront_key_pair_id, param["Parameter"]["Value"])
    return Control(
        settings=s,
        store=ChannelStore(client("dynamodb"), s.table_name),
        lifecycle=StepFunctionsLifecycle(client("stepfunctions"), s.state_machine_arn),
        republisher=LazyPort("chalicelib.pipeline.publish", "republish"),
        finalizer=LazyPort("chalicelib.pipeline.publish", "finalize_vod"),
        presigner=S3UploadPresigner(presign_s3_client()),
        metrics=EmfMetrics(s.metrics_namespace, {"service": obs.SERVICE, "stage": s.stage}),
        signer=signer,
        signed_url_ttl=s.signed_url_ttl,
    )
