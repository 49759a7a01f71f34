"""Powertools Logger, Metrics and Tracer for the pipeline (one instance each per process).

Every log line carries channel and seq (`bind`), metrics go out as EMF on the log stream
(namespace from POWERTOOLS_METRICS_NAMESPACE), tracing is off outside
Lambda, under POWERTOOLS_TRACE_DISABLED=true and on emulated stacks.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "slipstream"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Slipstream"),
                  service="pipeline")
# Powertools disables tracing outside Lambda and on POWERTOOLS_TRACE_DISABLED; an emulated stack
# (AWS_ENDPOINT_URL set) runs real Lambdas but has no X-Ray daemon, so tracing is off there too.
tracer = Tracer(service="slipstream", disabled=True if os.environ.get("AWS_ENDPOINT_URL") else None)

__all__ = ["MetricUnit", "bind", "flushing", "logger", "metrics", "tracer"]


@contextmanager
def bind(**keys: object) -> Iterator[None]:
    """Append keys (channel, seq) to every log line inside the block."""
    logger.append_keys(**keys)
    try:
        yield
    finally:
        logger.remove_keys(list(keys))


@contextmanager
def flushing() -> Iterator[None]:
    """Flush metrics at the end of one handler invocation (Chalice calls handlers with the
    event only, so Powertools' `log_metrics(lambda_handler)` decorator cannot wrap them)."""
    try:
        yield
    finally:
        with warnings.catch_warnings():
            # An invocation that had nothing to count (a duplicate, a deferred packager) is normal.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            metrics.flush_metrics(raise_on_empty_metrics=False)
