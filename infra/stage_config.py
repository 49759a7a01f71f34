"""Glue between the CloudFormation stack (infra/template.yaml) and `chalice deploy`.

infra/deploy.sh calls this to turn the stack's Outputs into the stage's environment variables and
to lay out a generated Chalice project (build/deploy/{stage}/project) whose .chalice/config.json
carries them. The checked-in .chalice/config.json is never rewritten: real resource names contain
the account id and region, which do not belong in the repository. Chalice's deployed-state file
stays in the real .chalice/deployed/ (a symlink), so `chalice delete` and re-deploys find it.

    python infra/stage_config.py prepare --stage prod --outputs outputs.json --dest build/deploy/prod/project
    python infra/stage_config.py function-arn --deployed .chalice/deployed/prod.json --name lifecycle

Stage lsdeploy lives in LocalStack (infra/common.sh): its functions also get the per-service
endpoints (AWS_ENDPOINT_URL_DYNAMODB=... where LocalStack community has no DynamoDB), its channel
table is created outside the stack from the template's own definition (`ensure-table`), and its API
URL is LocalStack's (`rest-api-url --endpoint`). `empty-bucket` and `stack-failure` serve every stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("dev", "prod", "lsdeploy")
# Deployed into LocalStack at AWS_ENDPOINT_URL instead of an AWS account.
EMULATOR_STAGES = ("lsdeploy",)
ENDPOINT_PREFIX = "AWS_ENDPOINT_URL_"

# Stack Output -> environment variable read by chalicelib.settings.Settings (or by app.py's decorators).
OUTPUT_ENV: dict[str, str] = {
    "TableName": "TABLE_NAME",
    "IngestBucketName": "INGEST_BUCKET",
    "OriginBucketName": "ORIGIN_BUCKET",
    "TranscodeQueueUrl": "TRANSCODE_QUEUE_URL",
    "PackageQueueUrl": "PACKAGE_QUEUE_URL",
    "IngestEventsQueueUrl": "INGEST_EVENTS_QUEUE_URL",
    "TranscodeQueueName": "TRANSCODE_QUEUE_NAME",
    "PackageQueueName": "PACKAGE_QUEUE_NAME",
    "IngestEventsQueueName": "INGEST_EVENTS_QUEUE_NAME",
    "StateMachineArn": "STATE_MACHINE_ARN",
    "PlaybackBaseUrl": "PLAYBACK_BASE_URL",
}

# Outputs only some stacks have: DistributionId without a CDN (Cdn=none: no invalidations), the
# key pair only with SignedPlayback=enabled (absent: the stage does not sign).
OPTIONAL_OUTPUT_ENV: dict[str, str] = {
    "DistributionId": "DISTRIBUTION_ID",
    "PlaybackKeyPairId": "CLOUDFRONT_KEY_PAIR_ID",
    "PlaybackPrivateKeyParameter": "CLOUDFRONT_PRIVATE_KEY_PARAMETER",
}

# What Chalice ships (DESIGN.md: only app.py, chalicelib/ and vendor/), plus what it needs to build.
SHIPPED = ("app.py", "chalicelib", "vendor", "requirements.txt")


class StageConfigError(Exception):
    """The stack outputs or the Chalice config cannot produce a deployable stage."""


def outputs_from_describe(doc: Any) -> dict[str, str]:
    """Accept `describe-stacks --query Stacks[0].Outputs` (a list) or the full describe-stacks document."""
    if isinstance(doc, dict) and "Stacks" in doc:
        doc = doc["Stacks"][0].get("Outputs", [])
    if not isinstance(doc, list):
        raise StageConfigError("stack outputs must be a list of {OutputKey, OutputValue}")
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in doc}


def stage_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    missing = sorted(k for k in OUTPUT_ENV if not outputs.get(k))
    if missing:
        raise StageConfigError(f"stack outputs missing: {', '.join(missing)} (is the stack up to date?)")
    env = {env: outputs[key] for key, env in OUTPUT_ENV.items()}
    env.update({name: outputs[key] for key, name in OPTIONAL_OUTPUT_ENV.items() if outputs.get(key)})
    return env


def service_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """The per-service endpoint overrides in env (AWS_ENDPOINT_URL_DYNAMODB=...), which boto3 honours."""
    return {k: v for k, v in env.items() if k.startswith(ENDPOINT_PREFIX) and v}


def render_config(config: Mapping[str, Any], stage: str, outputs: Mapping[str, str],
                  endpoints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The stage's config with the stack's real names layered over the checked-in placeholders.

    `endpoints` (AWS_ENDPOINT_URL_<SERVICE> -> URL) go to every function of an emulator stage, so
    the functions reach a service where the deploy created it (the table on the built-in emulator)."""
    if stage not in STAGES:
        raise StageConfigError(f"stage {stage!r} is not deployable; use one of {', '.join(STAGES)}")
    if endpoints and stage not in EMULATOR_STAGES:
        raise StageConfigError(f"stage {stage!r} deploys to AWS: per-service endpoints {sorted(endpoints)} "
                               "would send its functions elsewhere")
    out = copy.deepcopy(dict(config))
    stages = out.setdefault("stages", {})
    if stage not in stages:
        raise StageConfigError(f"stage {stage!r} missing from .chalice/config.json")
    stage_cfg = stages[stage]
    env = stage_cfg.setdefault("environment_variables", {})
    env.update(stage_environment(outputs))
    env.update(endpoints or {})
    env["STAGE"] = stage
    if not stage_cfg.get("iam_policy_file"):
        raise StageConfigError(f"stage {stage!r} has no iam_policy_file: autogen_policy reads only app.py")
    return out


def prepare_project(root: Path, stage: str, outputs: Mapping[str, str], dest: Path,
                    endpoints: Mapping[str, str] | None = None) -> Path:
    """Copy the shipped sources into dest and write the generated .chalice/ beside them."""
    config = json.loads((root / ".chalice" / "config.json").read_text())
    rendered = render_config(config, stage, outputs, endpoints)
    policy = root / ".chalice" / rendered["stages"][stage]["iam_policy_file"]
    if not policy.is_file():
        raise StageConfigError(f"{policy} not found")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in SHIPPED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    chalice_dir = dest / ".chalice"
    chalice_dir.mkdir()
    (chalice_dir / "config.json").write_text(json.dumps(rendered, indent=2) + "\n")
    shutil.copy2(policy, chalice_dir / policy.name)
    # Chalice's state and its dependency cache (deployments/: the packaged requirements, keyed by
    # their hash) live in the real .chalice/, so a rebuilt project updates in place and a re-deploy
    # does not download every wheel again.
    for kept in ("deployed", "deployments"):
        real = root / ".chalice" / kept
        real.mkdir(exist_ok=True)
        (chalice_dir / kept).symlink_to(real.resolve(), target_is_directory=True)
    return dest


def function_arn(deployed: Mapping[str, Any], name: str) -> str:
    """ARN of one Lambda function from Chalice's .chalice/deployed/{stage}.json."""
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "lambda_function" and resource.get("name") == name:
            return str(resource["lambda_arn"])
    names = sorted(
        r.get("name", "") for r in deployed.get("resources", []) if r.get("resource_type") == "lambda_function"
    )
    raise StageConfigError(f"no deployed Lambda function {name!r}; deployed: {', '.join(names) or 'none'}")


def rest_api_url(deployed: Mapping[str, Any], endpoint: str = "") -> str:
    """The stage's REST API URL from Chalice's deployed state; on an emulator, its execute-api path
    under `endpoint` (LocalStack: {endpoint}/_aws/execute-api/{id}/{stage}/) instead of AWS's host."""
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "rest_api":
            url = str(resource["rest_api_url"])
            if not endpoint:
                return url
            stage = urlsplit(url).path.strip("/")
            return f"{endpoint.rstrip('/')}/_aws/execute-api/{resource['rest_api_id']}/{stage}/"
    raise StageConfigError("no REST API in Chalice's deployed state (app.py defines no routes?)")


def _sub(value: Any, names: Mapping[str, str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("Fn::Sub"), str):
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
    raise StageConfigError(f"cannot resolve {value!r} outside CloudFormation")


def table_definition(template: Mapping[str, Any], app: str, stage: str) -> dict[str, Any]:
    """CreateTable arguments (+ "TimeToLive") for the template's ChannelTable, outside the stack
    (TableManagement=external): one definition of the table, whoever creates it."""
    try:
        props = template["Resources"]["ChannelTable"]["Properties"]
    except KeyError:
        raise StageConfigError("the template has no ChannelTable resource") from None
    args: dict[str, Any] = {"TableName": _sub(props["TableName"], {"AppName": app, "Stage": stage})}
    for key in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes"):
        if key in props:
            args[key] = copy.deepcopy(props[key])
    if "SSESpecification" in props:
        args["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        args["TimeToLive"] = {"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])}
    return args


def ensure_table(ddb: Any, definition: Mapping[str, Any]) -> str:
    """Create the table if it is missing (and converge its TTL); 'created' or 'exists'."""
    args = {k: v for k, v in definition.items() if k != "TimeToLive"}
    name = args["TableName"]
    outcome = "exists"
    try:
        ddb.describe_table(TableName=name)
    except ddb.exceptions.ResourceNotFoundException:
        ddb.create_table(**args)
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        outcome = "created"
    ttl = definition.get("TimeToLive")
    if ttl:
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return outcome


def delete_table(ddb: Any, name: str) -> bool:
    try:
        ddb.delete_table(TableName=name)
    except ddb.exceptions.ResourceNotFoundException:
        return False
    return True


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker (CloudFormation cannot delete a bucket that
    still holds any; `aws s3 rm --recursive` leaves the old versions of a versioned bucket)."""
    from botocore.exceptions import ClientError

    deleted = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
            for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
            deleted += len(keys)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
    return deleted


_CANCELLED = ("Resource creation cancelled", "Resource update cancelled")


def stack_failure(events: Sequence[Mapping[str, Any]], stack: str) -> str:
    """One line naming the resource whose failure stopped the stack's last operation, its reason,
    and where the stack ended up. `events` as DescribeStackEvents returns them (newest first)."""
    chronological = list(reversed(events))
    own = [i for i, e in enumerate(chronological) if e.get("LogicalResourceId") == stack
           and e.get("ResourceStatus") in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS")]
    last_op = chronological[own[-1]:] if own else chronological
    failures = [e for e in last_op if str(e.get("ResourceStatus", "")).endswith("_FAILED")
                and e.get("LogicalResourceId") != stack
                and not str(e.get("ResourceStatusReason", "")).startswith(_CANCELLED)]
    status = next((str(e["ResourceStatus"]) for e in reversed(last_op) if e.get("LogicalResourceId") == stack), "")
    where = f"; stack {stack} is {status}" if status else ""
    if not failures:
        return f"no resource of stack {stack} failed (a template or parameter error: see the aws output above){where}"
    first = failures[0]
    reason = " ".join(str(first.get("ResourceStatusReason", "no reason given")).split())
    return f"{first['LogicalResourceId']} ({first.get('ResourceType', '?')}) {first['ResourceStatus']}: {reason}{where}"


def describe_failure(cfn: Any, stack: str) -> str:
    """stack_failure() of the stack's events, or why there are none (the stack was never created)."""
    from botocore.exceptions import ClientError

    try:
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        return f"stack {stack} was not created (no resource ran: the aws error above says why)"
    return stack_failure(events, stack)


def _client(service: str) -> Any:
    import boto3  # only the commands that talk to AWS need it

    return boto3.client(service)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/stage_config.py")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="generate the Chalice project for a stage from stack outputs")
    prep.add_argument("--stage", required=True, choices=STAGES)
    prep.add_argument("--outputs", required=True, type=Path, help="JSON from describe-stacks")
    prep.add_argument("--dest", required=True, type=Path)
    prep.add_argument("--service-endpoints", action="store_true",
                      help="give the functions this shell's AWS_ENDPOINT_URL_<SERVICE> overrides (emulator stages)")
    arn = sub.add_parser("function-arn", help="print a deployed function's ARN")
    arn.add_argument("--deployed", required=True, type=Path)
    arn.add_argument("--name", required=True)
    env = sub.add_parser("env", help="print the stage environment as KEY=VALUE lines")
    env.add_argument("--outputs", required=True, type=Path)
    url = sub.add_parser("rest-api-url", help="print the stage's API URL from Chalice's deployed state")
    url.add_argument("--deployed", required=True, type=Path)
    url.add_argument("--endpoint", default="", help="an emulator's endpoint (its execute-api path instead of AWS's)")
    table = sub.add_parser("ensure-table", help="create the template's ChannelTable outside the stack")
    table.add_argument("--stage", required=True, choices=STAGES)
    table.add_argument("--template", type=Path, default=ROOT / "infra" / "template.yaml")
    drop = sub.add_parser("delete-table", help="delete the channel table made by ensure-table")
    drop.add_argument("--stage", required=True, choices=STAGES)
    drop.add_argument("--template", type=Path, default=ROOT / "infra" / "template.yaml")
    empty = sub.add_parser("empty-bucket", help="delete every object version and delete marker of a bucket")
    empty.add_argument("--bucket", required=True)
    failed = sub.add_parser("stack-failure", help="one line: the resource that failed the stack's last operation")
    failed.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            outputs = outputs_from_describe(json.loads(args.outputs.read_text()))
            endpoints = service_endpoints(os.environ) if args.service_endpoints else None
            print(prepare_project(ROOT, args.stage, outputs, args.dest, endpoints))
        elif args.command == "function-arn":
            print(function_arn(json.loads(args.deployed.read_text()), args.name))
        elif args.command == "rest-api-url":
            print(rest_api_url(json.loads(args.deployed.read_text()), args.endpoint))
        elif args.command in ("ensure-table", "delete-table"):
            from cfnlint.decode import decode  # the template's YAML tags (!Sub, !If) as cfn-lint reads them

            template, errors = decode(str(args.template))
            if errors or template is None:
                raise StageConfigError(f"cannot read {args.template}: {errors}")
            definition = table_definition(template, "slipstream", args.stage)
            ddb = _client("dynamodb")
            if args.command == "ensure-table":
                print(f"{definition['TableName']} {ensure_table(ddb, definition)} at {ddb.meta.endpoint_url}")
            else:
                gone = delete_table(ddb, definition["TableName"])
                print(f"{definition['TableName']} {'deleted' if gone else 'did not exist'} at {ddb.meta.endpoint_url}")
        elif args.command == "empty-bucket":
            print(f"s3://{args.bucket}: {empty_bucket(_client('s3'), args.bucket)} object versions deleted")
        elif args.command == "stack-failure":
            print(describe_failure(_client("cloudformation"), args.stack))
        else:
            for k, v in stage_environment(outputs_from_describe(json.loads(args.outputs.read_text()))).items():
                print(f"{k}={v}")
    except (StageConfigError, OSError, ValueError, KeyError) as exc:
        print(f"stage_config: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore's ClientError / EndpointConnectionError from the AWS commands
        if not type(exc).__module__.startswith("botocore"):
            raise
        print(f"stage_config: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
