"""The boto3 Step Functions adapter against moto: one execution per channel, named from its id."""

from __future__ import annotations

import json

import boto3
import pytest
from control_harness import Api

from chalicelib.control.adapters import StepFunctionsLifecycle
from chalicelib.control.ports import StaleTokenError
from chalicelib.errors import StoreError

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_given_a_created_channel_then_its_execution_runs_with_the_channel_id_as_input(api: Api) -> None:
    api.create("news")
    sfn = boto3.client("stepfunctions")
    [(name, _, _)] = api.lifecycle.started
    arn = api.ctl.store.get("news").execution_arn
    desc = sfn.describe_execution(executionArn=arn)
    assert desc["name"] == name and desc["status"] == "RUNNING"
    assert json.loads(desc["input"]) == {"channel_id": "news"}


def test_given_the_lifecycle_cannot_start_then_503_nothing_is_created_and_a_retry_works(api: Api) -> None:
    real = api.lifecycle.real
    api.lifecycle.real = StepFunctionsLifecycle(boto3.client("stepfunctions"), "")
    resp = api.call("POST", "/channels", {"id": "news"})
    assert resp.status_code == 503
    assert "not created" in resp.json_body["message"] and "STATE_MACHINE_ARN" in resp.json_body["message"]
    assert api.call("GET", "/channels/news").status_code == 404
    api.lifecycle.real = real
    assert api.call("POST", "/channels", {"id": "news"}).status_code == 201


def test_given_an_empty_token_then_the_adapter_reports_it_stale(api: Api) -> None:
    with pytest.raises(StaleTokenError):
        StepFunctionsLifecycle(boto3.client("stepfunctions"), "arn").send_command("", "start")


def test_given_a_missing_state_machine_then_start_raises_a_store_error(api: Api) -> None:
    adapter = StepFunctionsLifecycle(
        boto3.client("stepfunctions"), "arn:aws:states:us-east-1:123456789012:stateMachine:missing"
    )
    with pytest.raises(StoreError, match="could not start"):
        adapter.start("x-1", "x")
