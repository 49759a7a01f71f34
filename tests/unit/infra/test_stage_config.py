"""infra/stage_config.py: stack outputs -> the stage's Chalice config, without touching the real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import Settings
from infra.stage_config import (
    OUTPUT_ENV,
    StageConfigError,
    function_arn,
    main,
    outputs_from_describe,
    prepare_project,
    render_config,
    rest_api_url,
    stack_failure,
    table_definition,
)

ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = {
    "TableName": "slipstream-prod",
    "IngestBucketName": "slipstream-prod-ingest-123456789012-eu-west-1",
    "OriginBucketName": "slipstream-prod-origin-123456789012-eu-west-1",
    "TranscodeQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/slipstream-prod-transcode",
    "TranscodeQueueName": "slipstream-prod-transcode",
    "PackageQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/slipstream-prod-package",
    "PackageQueueName": "slipstream-prod-package",
    "IngestEventsQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/slipstream-prod-ingest-events",
    "IngestEventsQueueName": "slipstream-prod-ingest-events",
    "StateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:slipstream-prod-channel",
    "DistributionId": "E2EXAMPLE",
    "PlaybackBaseUrl": "https://d111111abcdef8.cloudfront.net",
}


def test_given_stack_outputs_when_rendered_then_the_app_settings_load_with_the_real_names(
    chalice_config: dict[str, Any],
) -> None:
    rendered = render_config(chalice_config, "prod", OUTPUTS)
    env = {**rendered["environment_variables"], **rendered["stages"]["prod"]["environment_variables"]}
    settings = Settings.from_env(env)
    assert settings.ingest_bucket == OUTPUTS["IngestBucketName"]
    assert settings.origin_bucket == OUTPUTS["OriginBucketName"]
    assert settings.state_machine_arn == OUTPUTS["StateMachineArn"]
    assert settings.distribution_id == "E2EXAMPLE"
    assert settings.playback_base_url == OUTPUTS["PlaybackBaseUrl"]
    assert settings.stage == "prod"
    # The checked-in config is untouched: rendering works on a copy.
    assert chalice_config["stages"]["prod"]["environment_variables"]["INGEST_BUCKET"] != OUTPUTS["IngestBucketName"]


def test_given_outputs_of_an_older_stack_when_rendered_then_the_error_names_what_is_missing(
    chalice_config: dict[str, Any],
) -> None:
    partial = {k: v for k, v in OUTPUTS.items() if k != "StateMachineArn"}
    with pytest.raises(StageConfigError, match="StateMachineArn"):
        render_config(chalice_config, "prod", partial)


def test_given_a_stack_without_a_cdn_when_rendered_then_the_stage_has_no_distribution(
    chalice_config: dict[str, Any],
) -> None:
    """Cdn=none (stage lsdeploy) has no DistributionId output: the pipeline then invalidates nothing."""
    outputs = {k: v.replace("prod", "lsdeploy") for k, v in OUTPUTS.items() if k != "DistributionId"}
    outputs["PlaybackBaseUrl"] = "http://127.0.0.1:4566/slipstream-lsdeploy-origin-000000000000-us-east-1"
    env = render_config(chalice_config, "lsdeploy", outputs)["stages"]["lsdeploy"]["environment_variables"]
    settings = Settings.from_env({**chalice_config["environment_variables"], **env})
    assert settings.distribution_id == "" and settings.playback_base_url == outputs["PlaybackBaseUrl"]
    assert settings.api_keys, "LocalStack's API Gateway has no IAM auth: the emulator stage uses API keys"


def test_per_service_endpoints_reach_the_functions_of_the_emulator_stage_only(
    chalice_config: dict[str, Any],
) -> None:
    endpoints = {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5000"}
    outputs = {k: v.replace("prod", "lsdeploy") for k, v in OUTPUTS.items()}
    env = render_config(chalice_config, "lsdeploy", outputs, endpoints)["stages"]["lsdeploy"]["environment_variables"]
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:5000"
    with pytest.raises(StageConfigError, match="deploys to AWS"):
        render_config(chalice_config, "prod", OUTPUTS, endpoints)


def test_the_local_stage_cannot_be_deployed_to_aws(chalice_config: dict[str, Any]) -> None:
    with pytest.raises(StageConfigError, match="not deployable"):
        render_config(chalice_config, "local", OUTPUTS)


def test_describe_stacks_output_in_either_shape_is_accepted() -> None:
    listed = [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]
    assert outputs_from_describe(listed) == OUTPUTS
    assert outputs_from_describe({"Stacks": [{"Outputs": listed}]}) == OUTPUTS
    with pytest.raises(StageConfigError):
        outputs_from_describe("nope")


def test_given_a_project_when_prepared_then_it_ships_the_code_config_and_policy_and_keeps_state(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    (root / ".chalice").mkdir(parents=True)
    (root / "chalicelib").mkdir()
    (root / "chalicelib" / "__init__.py").write_text("")
    (root / "chalicelib" / "__pycache__").mkdir()
    (root / "chalicelib" / "__pycache__" / "x.pyc").write_bytes(b"")
    (root / "app.py").write_text("app = None\n")
    (root / "requirements.txt").write_text("threefive==3.1.5\n")
    (root / "tests").mkdir()
    (root / ".chalice" / "config.json").write_text((ROOT / ".chalice" / "config.json").read_text())
    (root / ".chalice" / "policy-prod.json").write_text((ROOT / ".chalice" / "policy-prod.json").read_text())

    dest = prepare_project(root, "prod", OUTPUTS, tmp_path / "build" / "project")

    assert (dest / "app.py").read_text() == "app = None\n"
    assert (dest / "chalicelib" / "__init__.py").exists()
    assert not (dest / "chalicelib" / "__pycache__").exists()
    assert not (dest / "tests").exists(), "only what Chalice ships is copied"
    config = json.loads((dest / ".chalice" / "config.json").read_text())
    assert config["stages"]["prod"]["environment_variables"]["TABLE_NAME"] == "slipstream-prod"
    assert (dest / ".chalice" / "policy-prod.json").exists()
    # Chalice's deployed state lives in the real repo, so a rebuilt project still updates in place.
    assert (dest / ".chalice" / "deployed").resolve() == (root / ".chalice" / "deployed").resolve()
    # So does its cache of packaged requirements: a re-deploy does not download every wheel again.
    assert (dest / ".chalice" / "deployments").resolve() == (root / ".chalice" / "deployments").resolve()


def test_the_wiring_step_finds_the_lifecycle_function_in_chalices_deployed_state() -> None:
    deployed = {"resources": [
        {"name": "api_handler", "resource_type": "lambda_function", "lambda_arn": "arn:aws:lambda:x:1:function:a"},
        {"name": "lifecycle", "resource_type": "lambda_function", "lambda_arn": "arn:aws:lambda:x:1:function:l"},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc"},
    ]}  # fmt: skip
    assert function_arn(deployed, "lifecycle") == "arn:aws:lambda:x:1:function:l"
    with pytest.raises(StageConfigError, match="api_handler, lifecycle"):
        function_arn(deployed, "watchdog")


def test_the_cli_prints_the_stage_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps([{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]))
    assert main(["env", "--outputs", str(outputs)]) == 0
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert set(printed) == {*OUTPUT_ENV.values(), "DISTRIBUTION_ID"}
    outputs.write_text("[]")
    assert main(["env", "--outputs", str(outputs)]) == 1
    assert "stack outputs missing" in capsys.readouterr().err


def test_given_a_signing_stack_when_rendered_then_the_api_signs_with_its_key_group_key(
    chalice_config: dict[str, Any],
) -> None:
    signing = {**OUTPUTS, "PlaybackKeyPairId": "K2ABCDEFGHIJKL",
               "PlaybackPrivateKeyParameter": "/slipstream-prod/playback-signing-key"}
    env = render_config(chalice_config, "prod", signing)["stages"]["prod"]["environment_variables"]
    settings = Settings.from_env({**chalice_config["environment_variables"], **env})
    assert settings.cloudfront_key_pair_id == "K2ABCDEFGHIJKL"
    assert settings.cloudfront_private_key_parameter == "/slipstream-prod/playback-signing-key"
    # The parameter is inside the API's ssm:GetParameter scope of the checked-in policy.
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    scopes = [r for s in policy["Statement"] if "ssm:GetParameter" in s["Action"] for r in s["Resource"]]
    assert any(settings.cloudfront_private_key_parameter.startswith(r.split(":parameter", 1)[1].rstrip("*"))
               for r in scopes), scopes
    # A stack without signing leaves both unset: the API hands out plain URLs.
    plain = render_config(chalice_config, "prod", OUTPUTS)["stages"]["prod"]["environment_variables"]
    assert "CLOUDFRONT_KEY_PAIR_ID" not in plain


def test_the_api_url_is_the_emulators_execute_api_path_on_an_emulator_and_aws_s_otherwise() -> None:
    deployed = {"resources": [{"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc123",
                               "rest_api_url": "https://abc123.execute-api.us-east-1.amazonaws.com/api/"}]}
    assert rest_api_url(deployed) == "https://abc123.execute-api.us-east-1.amazonaws.com/api/"
    assert rest_api_url(deployed, "http://127.0.0.1:4566/") == "http://127.0.0.1:4566/_aws/execute-api/abc123/api/"
    with pytest.raises(StageConfigError, match="no REST API"):
        rest_api_url({"resources": []})


def test_the_table_created_outside_the_stack_is_the_templates_channel_table(template: dict[str, Any]) -> None:
    table = template["Resources"]["ChannelTable"]["Properties"]
    args = table_definition(template, "slipstream", "lsdeploy")
    assert args["TableName"] == "slipstream-lsdeploy"
    assert args["KeySchema"] == table["KeySchema"] and args["AttributeDefinitions"] == table["AttributeDefinitions"]
    assert args["BillingMode"] == "PAY_PER_REQUEST"
    assert args["TimeToLive"] == {"AttributeName": "expires_at", "Enabled": True}
    # The stack's output names the same table either way.
    output = template["Outputs"]["TableName"]["Value"]
    assert output == {"Fn::If": ["TableInStack", {"Ref": "ChannelTable"}, table["TableName"]]}


def _event(logical: str, status: str, reason: str = "", kind: str = "AWS::Logs::LogGroup") -> dict[str, str]:
    return {"LogicalResourceId": logical, "ResourceStatus": status, "ResourceStatusReason": reason,
            "ResourceType": kind}


def test_a_failed_stack_operation_is_named_in_one_line_by_its_first_failing_resource() -> None:
    stack = "slipstream-lsdeploy"
    chronological = [
        _event(stack, "CREATE_IN_PROGRESS", "User Initiated", "AWS::CloudFormation::Stack"),
        _event("TranscodeDLQ", "CREATE_IN_PROGRESS", kind="AWS::SQS::Queue"),
        _event("StateMachineLogs", "CREATE_FAILED", "Resource handler returned message:\n\"log group exists\""),
        _event("TranscodeDLQ", "CREATE_FAILED", "Resource creation cancelled", "AWS::SQS::Queue"),
        _event(stack, "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [StateMachineLogs].",
               "AWS::CloudFormation::Stack"),
        _event(stack, "ROLLBACK_COMPLETE", kind="AWS::CloudFormation::Stack"),
    ]
    line = stack_failure(list(reversed(chronological)), stack)
    assert line == ('StateMachineLogs (AWS::Logs::LogGroup) CREATE_FAILED: Resource handler returned message: '
                    '"log group exists"; stack slipstream-lsdeploy is ROLLBACK_COMPLETE')
    # An earlier operation's failure is not this one's.
    later = [*chronological, _event(stack, "CREATE_IN_PROGRESS", "User Initiated", "AWS::CloudFormation::Stack"),
             _event(stack, "CREATE_FAILED", "Parameter Stage failed", "AWS::CloudFormation::Stack")]
    assert stack_failure(list(reversed(later)), stack).startswith("no resource of stack slipstream-lsdeploy failed")
