"""The pipeline's view of chalicelib.obs: the same Logger, Metrics and Tracer as every function.

Metrics are flushed once per invocation by `metrics.log_metrics`, registered as Chalice middleware
in app.py; pipeline code only adds them (the old per-handler `flushing()` helper is gone, so no
invocation flushes twice).
"""

from __future__ import annotations

from ..obs import MetricUnit, bind, logger, metrics, tracer

__all__ = ["MetricUnit", "bind", "logger", "metrics", "tracer"]
