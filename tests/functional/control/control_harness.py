"""Harness for the control API tests: moto in-process, the real adapters, fakes for the pipeline ports.

A uniquely named module (not conftest) so tests can import its types: tests/ has no packages.

The channel's Step Functions execution cannot run in moto, so `Execution` plays its part by
calling the `lifecycle` Lambda handler with the payloads channel.asl.json sends, and
`RecordingLifecycle` records the commands the API delivers (and can make a token stale).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import root
from chalicelib.control import lifecycle
from chalicelib.control.adapters import StepFunctionsLifecycle
from chalicelib.control.asl import render, substitutions
from chalicelib.control.ports import Control, StaleTokenError
from tests.support.clock import T0, Clock  # noqa: F401  (re-exported to the suites)

PROJECT = Path(__file__).resolve().parents[3]
STAGE = json.loads((PROJECT / ".chalice" / "config.json").read_text())
LOCAL_ENV = {**STAGE["environment_variables"], **STAGE["stages"]["local"]["environment_variables"]}
API_KEY = LOCAL_ENV["API_KEYS"].split(",")[0]
AUTH = {"x-api-key": API_KEY}




@dataclass
class RecordingLifecycle:
    """Real Step Functions adapter (moto) underneath; records commands; can make tokens stale."""

    real: StepFunctionsLifecycle
    commands: list[tuple[str, str]] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)
    started: list[tuple[str, str, bool]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def start(self, name: str, channel_id: str, resume: bool = False) -> str:
        self.started.append((name, channel_id, resume))
        return self.real.start(name, channel_id, resume)

    def send_command(self, token: str, command: str) -> None:
        if token in self.stale:
            raise StaleTokenError("TaskTimedOut")
        self.real.send_command(token, command)
        self.commands.append((token, command))

    def stop(self, execution_arn: str, cause: str) -> None:
        self.stopped.append(execution_arn)


@dataclass
class Recorder:
    """Fake Republisher + Finalizer + Metrics: records calls; can be told to fail."""

    republished: list[tuple[str, str]] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    gaps: list[tuple[str, float]] = field(default_factory=list)
    fail_republish: bool = False

    def republish(self, channel_id: str, reason: str) -> None:
        if self.fail_republish:
            raise RuntimeError("origin bucket unavailable")
        self.republished.append((channel_id, reason))

    def finalize(self, channel_id: str) -> None:
        self.finalized.append(channel_id)

    def end(self, channel_id: str) -> None:
        self.ended.append(channel_id)

    def input_gap(self, channel_id: str, seconds: float) -> None:
        self.gaps.append((channel_id, seconds))


class Execution:
    """Plays the channel's state machine: the Lambda calls channel.asl.json would make."""

    def __init__(self, ctl: Control) -> None:
        self.ctl = ctl
        self.tokens = 0

    def park(self, channel_id: str, state: str) -> str:
        self.tokens += 1
        token = f"token-{channel_id}-{self.tokens}"
        lifecycle.handle(self.ctl, {"action": "await_command", "channel_id": channel_id, "token": token,
                                    "state": state})
        return token

    def call(self, action: str, channel_id: str, **kw: Any) -> dict[str, Any]:
        return lifecycle.handle(self.ctl, {"action": action, "channel_id": channel_id, **kw})

    def run(self, channel_id: str) -> str:
        """start command received: STARTING -> RUNNING, then park for stop (a watchdog tick)."""
        self.call("set_state", channel_id, state="RUNNING", expect=["STARTING"])
        return self.park(channel_id, "RUNNING")

    def stop(self, channel_id: str) -> None:
        """stop command received: live-to-VOD, STOPPING -> STOPPED, park for start/delete."""
        self.call("finalize", channel_id)
        self.call("set_state", channel_id, state="STOPPED", expect=["STOPPING"])
        self.park(channel_id, "STOPPED")


@dataclass
class Api:
    client: Client
    ctl: Control
    clock: Clock
    lifecycle: RecordingLifecycle
    recorder: Recorder
    execution: Execution

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> Any:
        hdrs = {**AUTH, "content-type": "application/json", **(headers or {})}
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        return self.client.http.request(method, path, headers=hdrs, body=data)

    def create(self, channel_id: str = "news", park: bool = True, **fields: Any) -> dict[str, Any]:
        resp = self.call("POST", "/channels", {"id": channel_id, **fields})
        assert resp.status_code == 201, resp.body
        if park:
            self.execution.park(channel_id, "IDLE")
        return dict(resp.json_body)

    def running(self, channel_id: str = "news") -> str:
        self.create(channel_id)
        assert self.call("POST", f"/channels/{channel_id}/start").status_code == 202
        return self.execution.run(channel_id)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    for k, v in {**LOCAL_ENV, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "PLAYBACK_BASE_URL": "https://cdn.example.test"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ddb = boto3.client("dynamodb")
        ddb.create_table(
            TableName=LOCAL_ENV["TABLE_NAME"],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("s3").create_bucket(Bucket=LOCAL_ENV["INGEST_BUCKET"])
        fn = "arn:aws:lambda:us-east-1:123456789012:function:slipstream-local-lifecycle"
        sm = boto3.client("stepfunctions").create_state_machine(
            name="slipstream-local-channel",
            definition=render("channel", substitutions(fn)),
            roleArn="arn:aws:iam::123456789012:role/slipstream-sfn",
        )
        monkeypatch.setenv("STATE_MACHINE_ARN", sm["stateMachineArn"])
        root.reset()
        ctl = root.control()
        clock, recorder = Clock(), Recorder()
        recording = RecordingLifecycle(real=ctl.lifecycle)
        ctl.clock, ctl.lifecycle = clock, recording
        ctl.republisher = ctl.finalizer = ctl.metrics = recorder
        from app import app

        with Client(app, stage_name="local", project_dir=str(PROJECT)) as client:
            yield Api(client, ctl, clock, recording, recorder, Execution(ctl))
        root.reset()


def serialise_moto(monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    """Make one moto DynamoDB operation atomic across threads. DynamoDB evaluates a condition and
    writes atomically (per item, or per transaction); moto in-process does not serialise threads,
    so race tests give it that one guarantee, and nothing more."""
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.Lock()
    original = getattr(DynamoDBBackend, operation)

    @functools.wraps(original)
    def atomic(*args: object, **kwargs: object) -> object:
        with lock:
            return original(*args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, operation, atomic)
