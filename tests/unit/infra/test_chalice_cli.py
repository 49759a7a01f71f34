"""infra/chalice_cli.py: chalice's waits and settling retries poll every second, with the same patience."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from chalice.awsclient import TypedAWSClient

from infra import chalice_cli
from tests.unit.infra.conftest import ROOT


class _Waiter:
    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls
        self.config = type("Config", (), {"delay": 5, "max_attempts": 60})()

    def wait(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


class _Lambda:
    def __init__(self) -> None:
        self.waits: list[tuple[str, dict[str, Any]]] = []

    def get_waiter(self, name: str) -> Any:
        calls: list[dict[str, Any]] = []
        self.waits.append((name, calls))  # type: ignore[arg-type]
        return _Waiter(calls)


@pytest.fixture
def client() -> Any:
    chalice_cli.install()
    sleeps: list[float] = []
    c = TypedAWSClient(botocore.session.get_session(), sleep=sleeps.append)
    lam = _Lambda()
    c._client = lambda name: lam  # type: ignore[method-assign,assignment]
    c.sleeps, c.lam = sleeps, lam  # type: ignore[attr-defined]
    return c


def test_a_function_wait_polls_every_second_for_as_long_as_chalice_would(client: Any) -> None:
    client._wait_for_function_update("ingest")
    client._wait_for_active("transcode")
    (updated, u_calls), (active, a_calls) = client.lam.waits
    assert (updated, active) == ("function_updated", "function_active")  # the same acceptors
    for calls, name in ((u_calls, "ingest"), (a_calls, "transcode")):
        assert calls == [{"FunctionName": name, "WaiterConfig": {"Delay": 1, "MaxAttempts": 300}}]  # 5 s x 60


def test_a_settling_mapping_is_retried_every_second_and_given_up_after_chalice_s_50_s() -> None:
    chalice_cli.install()
    sleeps: list[float] = []
    c = TypedAWSClient(botocore.session.get_session(), sleep=sleeps.append)
    in_use = botocore.exceptions.ClientError(
        {"Error": {"Code": "ResourceInUseException", "Message": "The event source mapping abc is in use"}},
        "DeleteEventSourceMapping")
    attempts: list[dict[str, Any]] = []

    def delete(**kwargs: Any) -> dict[str, Any]:
        attempts.append(kwargs)
        if len(attempts) < 8:
            raise in_use
        return {}

    c._call_client_method_with_retries(delete, {"UUID": "abc"}, max_attempts=10,  # remove_lambda_event_source's
                                       should_retry=c._is_settling_error,
                                       retryable_exceptions=(botocore.exceptions.ClientError,))
    assert len(attempts) == 8 and sleeps == [1] * 7  # done after 7 s, where chalice slept 35 s

    attempts.clear()
    sleeps.clear()
    with pytest.raises(botocore.exceptions.ClientError):
        c._call_client_method_with_retries(lambda **kw: (_ for _ in ()).throw(in_use), {}, max_attempts=10,
                                           should_retry=c._is_settling_error,
                                           retryable_exceptions=(botocore.exceptions.ClientError,))
    assert sum(sleeps) == 50  # 10 tries x 5 s: the same patience


def test_the_wrapper_is_chalice_itself() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "infra" / "chalice_cli.py"), "--version"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.startswith("chalice "), out
