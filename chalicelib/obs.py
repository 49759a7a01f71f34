"""Powertools Logger, Metrics and Tracer: one instance each per process, one service name, for
every function (control API, lifecycle, pipeline).

app.py registers their Lambda decorators once as Chalice middleware (`ConvertToMiddleware`), so
every invocation gets JSON logs with the Lambda context (function_request_id, cold_start), one EMF
flush at its end (`metrics.log_metrics`; nothing else flushes), and an X-Ray subsegment
(`tracer.capture_lambda_handler`). Inside, `bind(channel=..., seq=...)` adds keys to every log
line of a block.

Metrics: namespace POWERTOOLS_METRICS_NAMESPACE, dimensions service (POWERTOOLS_SERVICE_NAME) and
stage (STAGE), so dev and prod in one account never share a time series; infra/template.yaml's
alarms and dashboard select exactly these dimensions. Tracing is off outside Lambda, under
POWERTOOLS_TRACE_DISABLED=true and on emulated stacks (AWS_ENDPOINT_URL set: real Lambdas but no
X-Ray daemon).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "slipstream")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Slipstream")
STAGE = os.environ.get("STAGE", "local")
DIMENSIONS = {"service": SERVICE, "stage": STAGE}  # on every metric this code emits

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
metrics.set_default_dimensions(stage=STAGE)
tracer = Tracer(service=SERVICE, disabled=True if os.environ.get("AWS_ENDPOINT_URL") else None)

# An invocation with nothing to count (a duplicate event, a deferred packager, a GET) is normal;
# log_metrics would warn about it once per process.
warnings.filterwarnings("ignore", message="No application metrics to publish")

__all__ = ["DIMENSIONS", "SERVICE", "MetricUnit", "bind", "logger", "metrics", "tracer"]


@contextmanager
def bind(**keys: object) -> Iterator[None]:
    """Append keys (channel, seq, ...) to every log line inside the block; None values are skipped."""
    given = {k: v for k, v in keys.items() if v is not None}
    logger.append_keys(**given)
    try:
        yield
    finally:
        logger.remove_keys(list(given))
