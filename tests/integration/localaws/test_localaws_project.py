"""Slipstream itself deploys to the emulator: every handler in app.py is wired to its event source."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from devtools.localaws.deploy import REPO_ROOT, Deployment

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("aws")]


def _app_functions() -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(REPO_ROOT / "devtools/localaws/_introspect.py"), str(REPO_ROOT)],
                         capture_output=True, text=True, cwd=REPO_ROOT, check=True, timeout=60)
    described: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return described


def test_given_the_project_when_deployed_then_every_handler_has_a_wired_function(
    deployed: Deployment, boto: Callable[[str], Any]
) -> None:
    described = _app_functions()
    lam = boto("lambda")
    for f in described["functions"]:
        name = deployed.function_name(f["name"])
        conf = lam.get_function_configuration(FunctionName=name)
        assert conf["Handler"] == f["handler"]
        env = conf["Environment"]["Variables"]
        assert env["TABLE_NAME"] == deployed.table_name
        assert env["STATE_MACHINE_ARN"] == deployed.state_machine_arn
        if f["kind"] == "sqs":
            (mapping,) = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
            assert mapping["EventSourceArn"].endswith(f":{f['queue']}")
            assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    notif = boto("s3").get_bucket_notification_configuration(Bucket=deployed.ingest_bucket)
    s3_handlers = {f["name"] for f in described["functions"] if f["kind"] == "s3"}
    assert {c["Id"] for c in notif.get("LambdaFunctionConfigurations", [])} == s3_handlers
    assert deployed.transcode_queue_url.endswith("-transcode")
    assert deployed.package_queue_url.endswith("-package")


def test_given_the_project_when_deployed_then_state_machines_and_redrive_exist(
    deployed: Deployment, boto: Callable[[str], Any]
) -> None:
    sfn, sqs = boto("stepfunctions"), boto("sqs")
    asl = sorted(p.name.removesuffix(".asl.json") for p in (REPO_ROOT / "statemachines").glob("*.asl.json"))
    assert sorted(deployed.state_machines) == asl
    for arn in deployed.state_machines.values():
        definition = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition, "every placeholder must be filled"
    attrs = sqs.get_queue_attributes(QueueUrl=deployed.transcode_queue_url, AttributeNames=["RedrivePolicy"])
    assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] == 3
    env = deployed.env()
    assert env["PLAYBACK_BASE_URL"] == f"{env['AWS_ENDPOINT_URL']}/{deployed.origin_bucket}"
    assert boto("cloudfront").get_distribution(Id=deployed.distribution_id)["Distribution"]["Id"]
