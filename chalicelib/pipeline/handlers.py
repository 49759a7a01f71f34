"""Glue between app.py's decorators and the use cases: raw event dict in, use case called,
serialisable result out. Kept out of app.py so app.py stays decorators only. Logging context,
tracing and the one metrics flush per invocation come from the Powertools middleware app.py
registers for every function (chalicelib.obs).

Partial batch failures: Chalice 1.34 cannot set ReportBatchItemFailures on an SQS event source,
and without it a returned `batchItemFailures` list is ignored (the whole batch counts as done),
so Powertools' BatchProcessor would silently drop failures. Instead the transcode queue uses
batch_size=1 (one failure = one retry), and the packager renders every channel of its batch and
then raises if any failed (packaging is idempotent, so retrying the rest is harmless).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import SlipstreamError
from . import events, ingest, publish, worker
from .deps import Deps
from .obs import logger, tracer
from .queues import PackageMessage, TranscodeMessage

# Read at import, because app.py's decorators need literal names when Chalice builds the event
# sources. The emulator and Lambda import the app with the stage's env set; `chalice deploy` and
# `chalice package` run in a plain shell, so infra/deploy.sh exports STAGE (and the trigger) first.
STAGE = os.environ.get("STAGE", "local")
INGEST_BUCKET = os.environ.get("INGEST_BUCKET", f"slipstream-{STAGE}-ingest")
TRANSCODE_QUEUE = f"slipstream-{STAGE}-transcode"
PACKAGE_QUEUE = f"slipstream-{STAGE}-package"
INGEST_EVENTS_QUEUE = f"slipstream-{STAGE}-ingest-events"
# How uploads reach on_segment_uploaded: "s3" (chalice deploy's native bucket notification, local
# default), "eventbridge" (a rule straight to the Lambda) or "sqs" (EventBridge -> queue, what the
# CloudFormation stack in infra/ wires, since `chalice package` cannot package S3 notifications).
# Exactly one is registered, so an upload is never ingested twice by two paths.
INGEST_TRIGGER = os.environ.get("INGEST_TRIGGER", "s3" if STAGE == "local" else "sqs")
if INGEST_TRIGGER not in ("s3", "eventbridge", "sqs"):
    raise ValueError(f"INGEST_TRIGGER={INGEST_TRIGGER!r}: use s3, eventbridge or sqs")


def _deps(context: Any = None) -> Deps:
    from .. import root
    from .deps import default

    d = default()
    d.extra.setdefault("idempotency", root.idempotency_store())
    if context is not None:
        d.extra["lambda_context"] = context  # idempotency records expire in-progress with the Lambda
    return d


def _bodies(event: Mapping[str, Any]) -> list[str]:
    return [str(r.get("body", "")) for r in event.get("Records") or ()]


@tracer.capture_method
def on_s3(event: Mapping[str, Any], context: Any = None) -> list[str]:
    return ingest.handle(events.from_s3_notification(event), _deps(context))


@tracer.capture_method
def on_eventbridge(event: Mapping[str, Any], context: Any = None) -> list[str]:
    return ingest.handle(events.from_eventbridge(event), _deps(context))


@tracer.capture_method
def on_ingest_queue(event: Mapping[str, Any], context: Any = None) -> list[str]:
    return ingest.handle(events.from_sqs_bodies(_bodies(event)), _deps(context))


@tracer.capture_method
def on_transcode(event: Mapping[str, Any], context: Any = None) -> list[str]:
    deps = _deps(context)
    out = []
    for record in event.get("Records") or ():
        try:
            msg = TranscodeMessage.parse(str(record.get("body", "")))
        except SlipstreamError as e:
            # A malformed message can never succeed: log it and let it go (no retry loop).
            logger.error("malformed transcode message dropped", extra={"error": str(e)})
            out.append(f"dropped: {e}")
            continue
        try:
            out.append(worker.transcode_chunk(msg, deps))
        except Exception:
            _retry_soon(deps, record)
            raise
    return out


RETRY_DELAYS = (1, 4, 15)  # seconds before the 2nd, 3rd, 4th receive of a failed transcode


def _retry_soon(deps: Any, record: Mapping[str, Any]) -> None:
    """A failed job (ffmpeg killed, a throttled read) is retried within seconds, while its slot can still
    be filled with media; the queue's visibility timeout stays long enough for the longest job."""
    receipt = str(record.get("receiptHandle") or "")
    if not receipt or not deps.settings.transcode_queue_url:
        return
    try:
        count = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
    except (TypeError, ValueError):
        count = 1
    delay = RETRY_DELAYS[min(max(count, 1), len(RETRY_DELAYS)) - 1]
    try:
        deps.queue.retry_after(deps.settings.transcode_queue_url, receipt, delay)
    except SlipstreamError as e:  # the message still comes back, a visibility timeout later
        logger.warning("could not shorten the retry delay", extra={"error": str(e)})


@tracer.capture_method
def on_package(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    msgs = []
    for body in _bodies(event):
        try:
            msgs.append(PackageMessage.parse(body))
        except SlipstreamError as e:
            logger.error("malformed package message dropped", extra={"error": str(e)})
    return [o.__dict__ for o in publish.package_channels(msgs, _deps())]
