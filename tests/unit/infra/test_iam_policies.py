""".chalice/policy-{dev,prod}.json: least privilege, derived from what the shipped code really calls.

Chalice's policy autogeneration reads only app.py, so the stages use checked-in policies. These
tests keep them honest in both directions: a boto3 call added to chalicelib without its IAM action
fails here (instead of as AccessDenied in production), and an action no code needs fails too.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
STAGES = ("dev", "prod", "lsdeploy")
# Shipped modules that no function runs: operator CLIs, used with the operator's own credentials.
OPERATOR_TOOLS = {
    "chalicelib/pipeline/replay.py": "python -m chalicelib.pipeline.replay (DLQ redrive by an operator)",
}
SHIPPED = [p for p in [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
           if str(p.relative_to(ROOT)) not in OPERATOR_TOOLS]

# boto3 client/resource method -> IAM actions it needs.
METHOD_ACTIONS: dict[str, set[str]] = {
    # S3 (HeadObject is authorised by s3:GetObject; download_file does Head + Get; a GetObject with a
    # VersionId -- the ingest bucket is read by the accepted version -- needs s3:GetObjectVersion)
    "get_object": {"s3:GetObject", "s3:GetObjectVersion"}, "head_object": {"s3:GetObject"},
    "download_file": {"s3:GetObject"},
    "download_fileobj": {"s3:GetObject"}, "put_object": {"s3:PutObject"}, "upload_file": {"s3:PutObject"},
    "upload_fileobj": {"s3:PutObject"}, "delete_object": {"s3:DeleteObject"}, "delete_objects": {"s3:DeleteObject"},
    "copy_object": {"s3:GetObject", "s3:PutObject"}, "list_objects_v2": {"s3:ListBucket"},
    # DynamoDB (client and Table resource share the names)
    "get_item": {"dynamodb:GetItem"}, "put_item": {"dynamodb:PutItem"}, "update_item": {"dynamodb:UpdateItem"},
    "delete_item": {"dynamodb:DeleteItem"}, "query": {"dynamodb:Query"}, "scan": {"dynamodb:Scan"},
    "batch_get_item": {"dynamodb:BatchGetItem"}, "batch_write_item": {"dynamodb:BatchWriteItem"},
    "batch_writer": {"dynamodb:BatchWriteItem"}, "transact_get_items": {"dynamodb:GetItem"},
    # SQS
    "send_message": {"sqs:SendMessage"}, "send_message_batch": {"sqs:SendMessage"},
    "receive_message": {"sqs:ReceiveMessage"}, "delete_message": {"sqs:DeleteMessage"},
    "delete_message_batch": {"sqs:DeleteMessage"}, "change_message_visibility": {"sqs:ChangeMessageVisibility"},
    "get_queue_url": {"sqs:GetQueueUrl"}, "get_queue_attributes": {"sqs:GetQueueAttributes"},
    # Step Functions
    "start_execution": {"states:StartExecution"}, "stop_execution": {"states:StopExecution"},
    "describe_execution": {"states:DescribeExecution"}, "list_executions": {"states:ListExecutions"},
    "send_task_success": {"states:SendTaskSuccess"}, "send_task_failure": {"states:SendTaskFailure"},
    "send_task_heartbeat": {"states:SendTaskHeartbeat"},
    # CloudFront, CloudWatch, Lambda, EventBridge
    "create_invalidation": {"cloudfront:CreateInvalidation"}, "get_invalidation": {"cloudfront:GetInvalidation"},
    "put_metric_data": {"cloudwatch:PutMetricData"}, "invoke": {"lambda:InvokeFunction"},
    "put_events": {"events:PutEvents"},
    # Secrets (the CloudFront signing key is an SSM SecureString under the AWS-managed key)
    "get_parameter": {"ssm:GetParameter"}, "get_parameters": {"ssm:GetParameters"},
    "get_secret_value": {"secretsmanager:GetSecretValue"},
}
TRANSACT_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                    "ConditionCheck": "dynamodb:ConditionCheckItem"}

# Needed by the Lambda runtime, not by a call in our code; each with the reason it is granted.
RUNTIME_ACTIONS: dict[str, str] = {
    "logs:CreateLogGroup": "the function's own log group",
    "logs:CreateLogStream": "the function's own log streams",
    "logs:PutLogEvents": "the function's logs (Powertools logger, EMF metrics)",
    "sqs:ReceiveMessage": "the SQS event source mapping polls with the function's role",
    "sqs:DeleteMessage": "the event source mapping deletes a processed batch",
    "sqs:GetQueueAttributes": "the event source mapping reads the queue's settings",
    "xray:PutTraceSegments": "Powertools Tracer with active tracing",
    "xray:PutTelemetryRecords": "Powertools Tracer with active tracing",
}
# ListBucket turns HeadObject/GetObject on a missing key from 403 into 404, which the code relies on
# (an absent object is "not there yet", a 403 would be a StoreError).
LIST_FOR_404 = {"head_object", "download_file", "get_object"}

# Actions AWS does not scope to a resource (or, for CloudFront, whose id only exists after the stack).
UNSCOPED_OK = {
    "states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat",  # task tokens carry no ARN
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    "cloudfront:CreateInvalidation", "cloudfront:GetInvalidation",  # distribution/* (id unknown until deploy)
}


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def actions_used_by_code() -> tuple[set[str], dict[str, list[str]]]:
    """IAM actions the shipped code needs, and where each comes from (file:line)."""
    used: set[str] = set()
    where: dict[str, list[str]] = {}

    def add(actions: set[str], path: Path, line: int) -> None:
        for a in actions:
            used.add(a)
            where.setdefault(a, []).append(f"{path.relative_to(ROOT)}:{line}")

    for path in SHIPPED:
        tree = ast.parse(path.read_text(), str(path))
        for call in _calls(tree):
            method = call.func.attr  # type: ignore[attr-defined]
            if method == "generate_presigned_url":
                # A presigned URL is signed with the function's role: it needs the action it presigns.
                target = call.args[0] if call.args else next(
                    (k.value for k in call.keywords if k.arg == "ClientMethod"), None)
                if isinstance(target, ast.Constant) and isinstance(target.value, str):
                    add(METHOD_ACTIONS[target.value], path, call.lineno)
                continue
            if method == "transact_write_items":
                kinds = {k.value for n in ast.walk(call) if isinstance(n, ast.Dict)
                         for k in n.keys if isinstance(k, ast.Constant) and k.value in TRANSACT_ACTIONS}
                add({TRANSACT_ACTIONS[k] for k in (kinds or TRANSACT_ACTIONS)}, path, call.lineno)
                continue
            if method in METHOD_ACTIONS:
                add(METHOD_ACTIONS[method], path, call.lineno)
                if method in LIST_FOR_404:
                    add({"s3:ListBucket"}, path, call.lineno)
    return used, where


def statements(policy: dict[str, Any]) -> Iterator[tuple[set[str], list[str]]]:
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow", "deny statements belong in SCPs/bucket policies, not here"
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        yield set(acts), res


def granted(policy: dict[str, Any]) -> set[str]:
    return {a for acts, _ in statements(policy) for a in acts}


def test_the_code_scan_finds_the_calls_we_know_about() -> None:
    """Guard the guard: if the scan found nothing, the two tests below would pass vacuously."""
    used, _ = actions_used_by_code()
    assert {"dynamodb:UpdateItem", "s3:PutObject"} <= used, used


@pytest.mark.parametrize("stage", STAGES)
def test_every_action_the_code_calls_is_granted(stage: str, policies: dict[str, dict[str, Any]]) -> None:
    used, where = actions_used_by_code()
    missing = used - granted(policies[stage])
    assert not missing, f"policy-{stage} lacks {({a: where[a][:3] for a in sorted(missing)})}"


@pytest.mark.parametrize("stage", STAGES)
def test_no_action_is_granted_that_nothing_needs(stage: str, policies: dict[str, dict[str, Any]]) -> None:
    used, _ = actions_used_by_code()
    extra = granted(policies[stage]) - used - set(RUNTIME_ACTIONS)
    assert not extra, f"policy-{stage} grants actions no code calls: {sorted(extra)}"
    assert not any("*" in a for a in granted(policies[stage])), "wildcard actions are not least privilege"


@pytest.mark.parametrize("stage", STAGES)
def test_resources_are_scoped_to_the_stage(stage: str, policies: dict[str, dict[str, Any]]) -> None:
    text = json.dumps(policies[stage])
    for other in set(STAGES) - {stage}:
        assert f"slipstream-{other}" not in text, f"policy-{stage} names {other} resources"
    for acts, resources in statements(policies[stage]):
        for r in resources:
            if f"slipstream-{stage}" in r:
                continue
            assert acts <= UNSCOPED_OK, f"{sorted(acts)} on {r!r} is not scoped to slipstream-{stage}"


@pytest.mark.parametrize("stage", STAGES)
def test_the_stacks_resources_are_the_ones_the_policy_grants(
    stage: str, policies: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """The names infra/template.yaml gives each resource match the policy's patterns for that stage."""
    params = {"AppName": "slipstream", "Stage": stage, "AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1",
              "AWS::Partition": "aws"}

    def name(resource: str, prop: str) -> str:
        raw = template["Resources"][resource]["Properties"][prop]
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: params[m.group(1)], raw["Fn::Sub"])

    expected = {
        "dynamodb:UpdateItem": f"arn:aws:dynamodb:eu-west-1:123456789012:table/{name('ChannelTable', 'TableName')}",
        "s3:PutObject": f"arn:aws:s3:::{name('OriginBucket', 'BucketName')}/demo/360p/000000000001.m4s",
        "s3:GetObject": f"arn:aws:s3:::{name('IngestBucket', 'BucketName')}/demo/000000000001.ts",
        "sqs:SendMessage": f"arn:aws:sqs:eu-west-1:123456789012:{name('TranscodeQueue', 'QueueName')}",
        "sqs:ReceiveMessage": f"arn:aws:sqs:eu-west-1:123456789012:{name('IngestEventsQueue', 'QueueName')}",
        "states:StartExecution": "arn:aws:states:eu-west-1:123456789012:stateMachine:"
        + name("ChannelStateMachine", "StateMachineName"),
    }
    for action, arn in expected.items():
        allowed = [r for acts, res in statements(policies[stage]) if action in acts for r in res]
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in allowed), f"{action} on {arn} is not granted"
    # And nothing of another stage's stack would be.
    allowed = [r for acts, res in statements(policies[stage]) if "dynamodb:UpdateItem" in acts for r in res]
    for other_stage in set(STAGES) - {stage}:
        other_table = template["Resources"]["ChannelTable"]["Properties"]["TableName"]["Fn::Sub"].replace(
            "${AppName}", "slipstream").replace("${Stage}", other_stage)
        assert not any(fnmatch.fnmatchcase(f"arn:aws:dynamodb:eu-west-1:123456789012:table/{other_table}", p)
                       for p in allowed)


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_points_chalice_at_its_checked_in_policy(stage: str, chalice_config: dict[str, Any]) -> None:
    stage_cfg = chalice_config["stages"][stage]
    assert chalice_config.get("autogen_policy") is False or stage_cfg.get("autogen_policy") is False
    assert stage_cfg["iam_policy_file"] == f"policy-{stage}.json"
    assert (ROOT / ".chalice" / stage_cfg["iam_policy_file"]).is_file()


def test_the_localstack_stage_runs_prods_policy(policies: dict[str, dict[str, Any]]) -> None:
    """`make deploy STAGE=lsdeploy` (the LocalStack CI stage) deploys prod's policy with its own names,
    so what it exercises is what prod gets."""
    renamed = json.loads(json.dumps(policies["prod"]).replace("slipstream-prod", "slipstream-lsdeploy"))
    assert policies["lsdeploy"] == renamed
