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
    partial = {k: v for k, v in OUTPUTS.items() if k != "DistributionId"}
    with pytest.raises(StageConfigError, match="DistributionId"):
        render_config(chalice_config, "prod", partial)


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
    assert set(printed) == set(OUTPUT_ENV.values())
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
