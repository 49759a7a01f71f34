from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_metrics_from_other_tests() -> Iterator[None]:
    """Metrics is a process-wide singleton: a test that records a metric outside a handler
    (nothing flushes it) would have it flushed by the next handler invocation in the same
    xdist worker. Each test starts and ends with no pending metrics."""
    from chalicelib import obs

    obs.metrics.clear_metrics()
    yield
    obs.metrics.clear_metrics()
