"""infra/chalice_cli.py and infra/aws_cli.py: the deploy tools poll AWS sooner, with the same patience."""

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


@pytest.fixture(autouse=True)
def _restored() -> Any:
    """The patches are process-wide: each test puts chalice's and botocore's own methods back."""
    from botocore import waiter

    names = ("_call_client_method_with_retries", "_wait_for_active", "_wait_for_function_update")
    saved = {n: TypedAWSClient.__dict__[n] for n in names}
    wait = waiter.Waiter.wait
    yield
    for n, f in saved.items():
        setattr(TypedAWSClient, n, f)
    for cls in (TypedAWSClient, waiter.Waiter):
        if "_slipstream_poll" in cls.__dict__:
            delattr(cls, "_slipstream_poll")
    waiter.Waiter.wait = wait


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


def test_the_wrappers_are_the_tools_themselves() -> None:
    for script, version in (("chalice_cli.py", "chalice "), ("aws_cli.py", "aws-cli/")):
        out = subprocess.run([sys.executable, str(ROOT / "infra" / script), "--version"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0 and out.stdout.startswith(version), out


def test_the_aws_cli_s_stack_waits_poll_every_5_s_for_as_long_as_the_cli_would(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    """`aws cloudformation deploy` sleeps 30 s between two DescribeStacks; through infra/aws_cli.py, 5 s."""
    from botocore import waiter

    from infra import aws_cli

    aws_cli.install()
    sleeps: list[float] = []
    monkeypatch.setattr(waiter.time, "sleep", sleeps.append)
    config = waiter.SingleWaiterConfig({"delay": 30, "maxAttempts": 120, "operation": "DescribeStacks",
                                        "acceptors": [{"state": "success", "matcher": "path", "argument": "done",
                                                       "expected": True}]})
    calls: list[dict[str, Any]] = []

    def describe(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return {"done": len(calls) >= 3}

    waiter.Waiter("StackUpdateComplete", config, describe).wait(StackName="s", WaiterConfig={"Delay": 30})
    assert sleeps == [5, 5] and calls == [{"StackName": "s"}] * 3  # the stack was done 10 s in, not 60 s

    calls.clear()
    sleeps.clear()
    never = waiter.Waiter("StackUpdateComplete", config, lambda **kw: {"done": False})
    with pytest.raises(waiter.WaiterError):
        never.wait(StackName="s")
    assert sleeps == [5] * 719  # 720 tries 5 s apart: the CLI's hour (120 x 30 s)

