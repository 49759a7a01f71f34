"""boto3 adapters for the control plane's ports. Each takes its client in the constructor."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..errors import StoreError, aws_error_code
from .ports import PlaybackGrant, StaleTokenError

# Step Functions answers these when the token's task is no longer waiting.
_STALE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken", "ExecutionDoesNotExist"}


class StepFunctionsLifecycle:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._sfn = client
        self._arn = state_machine_arn

    def start(self, name: str, channel_id: str, resume: bool = False) -> str:
        if not self._arn:
            raise StoreError("no state machine configured (STATE_MACHINE_ARN is empty)")
        try:
            payload: dict[str, object] = {"channel_id": channel_id}
            if resume:
                payload["resume"] = True
            out = self._sfn.start_execution(stateMachineArn=self._arn, name=name, input=json.dumps(payload))
        except Exception as e:
            code = aws_error_code(e)
            if code == "ExecutionAlreadyExists":  # a retried start of the same named execution
                return self.execution_arn(name)
            raise StoreError(f"could not start the channel's lifecycle ({code or type(e).__name__})") from e
        return str(out["executionArn"])

    def execution_arn(self, name: str) -> str:
        """arn:aws:states:R:A:stateMachine:M -> arn:aws:states:R:A:execution:M:name"""
        return self._arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"

    def send_command(self, token: str, command: str) -> None:
        if not token:
            raise StaleTokenError("no lifecycle task is waiting")
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps({"command": command}))
        except Exception as e:
            code = aws_error_code(e)
            if code in _STALE:
                raise StaleTokenError(f"lifecycle task no longer waiting ({code})") from e
            raise StoreError(f"could not reach the channel's lifecycle ({code or type(e).__name__})") from e

    def stop(self, execution_arn: str, cause: str) -> None:
        if not execution_arn:
            return
        try:
            self._sfn.stop_execution(executionArn=execution_arn, cause=cause[:32768])
        except Exception as e:
            if aws_error_code(e) not in {"ExecutionDoesNotExist"}:
                raise StoreError(f"could not stop the lifecycle execution ({aws_error_code(e)})") from e


class S3UploadPresigner:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def presign_put(self, bucket: str, key: str, expires_in: int) -> str:
        # Signed for exactly this bucket + key + method: the URL cannot write anywhere else.
        return str(
            self._s3.generate_presigned_url(
                "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        )


class CloudFrontPolicySigner:
    """Custom-policy signatures with the stage's CloudFront key (RSA-SHA1, as CloudFront requires).

    One policy per viewer covers every object under the channel's wildcard, so the same signature
    authorises the multivariant playlist, the media playlists, init and media segments, whatever
    their URL shape: a canned (one-URL) policy cannot, because players derive those URLs."""

    def __init__(self, key_pair_id: str, private_key_pem: str) -> None:
        from botocore.signers import CloudFrontSigner

        try:
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding, rsa
        except ImportError as e:  # pragma: no cover - the stage enabling signing must ship it
            raise StoreError("signed playback needs the 'cryptography' package") from e
        try:
            key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        except ValueError as e:
            raise StoreError(f"the CloudFront signing key is not a PEM private key ({e})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise StoreError("the CloudFront signing key must be an RSA key (CloudFront accepts RSA-2048)")

        def rsa_signer(message: bytes) -> bytes:
            return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

        self.key_pair_id = key_pair_id
        self._signer = CloudFrontSigner(key_pair_id, rsa_signer)

    def grant(self, resource: str, expires_at: datetime) -> PlaybackGrant:
        policy = self._signer.build_policy(resource, expires_at).encode()
        encode = self._signer._url_b64encode  # CloudFront's own alphabet; botocore's helper is the reference
        return PlaybackGrant(
            resource=resource,
            policy=encode(policy).decode(),
            signature=encode(self._signer.rsa_signer(policy)).decode(),
            key_pair_id=self.key_pair_id,
            expires_at=expires_at,
        )


class LazyPort:
    """Resolve a pipeline function on first use, so the control plane imports without it."""

    def __init__(self, module: str, attr: str) -> None:
        self._module, self._attr = module, attr

    def _fn(self) -> Any:
        import importlib

        return getattr(importlib.import_module(self._module), self._attr)

    def republish(self, channel_id: str, reason: str) -> None:
        self._fn()(channel_id, reason)

    def finalize(self, channel_id: str) -> None:
        self._fn()(channel_id)

    def end(self, channel_id: str) -> None:
        import importlib

        importlib.import_module(self._module).end_event(channel_id)


class EmfMetrics:
    """CloudWatch metrics via the embedded metric format (stdout), so no client call in the hot path.

    InputGapSeconds is one time series per channel (dimensions channel + `dimensions`, i.e. service
    and stage): infra/template.yaml's input-gap alarm is a Metrics Insights query grouped by channel."""

    def __init__(self, namespace: str = "Slipstream", dimensions: dict[str, str] | None = None) -> None:
        self._namespace = namespace
        self._dimensions = dict(dimensions or {})

    def input_gap(self, channel_id: str, seconds: float) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(
            name="InputGapSeconds", unit=MetricUnit.Seconds, value=seconds, namespace=self._namespace,
            default_dimensions=self._dimensions,
        ) as metric:
            metric.add_dimension(name="channel", value=channel_id)
