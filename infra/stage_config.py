"""Glue between the CloudFormation stack (infra/template.yaml) and `chalice deploy`.

infra/deploy.sh calls this to turn the stack's Outputs into the stage's environment variables and
to lay out a generated Chalice project (build/deploy/{stage}/project) whose .chalice/config.json
carries them. The checked-in .chalice/config.json is never rewritten: real resource names contain
the account id and region, which do not belong in the repository. Chalice's deployed-state file
stays in the real .chalice/deployed/ (a symlink), so `chalice delete` and re-deploys find it.

    python infra/stage_config.py prepare --stage prod --outputs outputs.json --dest build/deploy/prod/project
    python infra/stage_config.py function-arn --deployed .chalice/deployed/prod.json --name lifecycle
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("dev", "prod")

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
    "DistributionId": "DISTRIBUTION_ID",
    "PlaybackBaseUrl": "PLAYBACK_BASE_URL",
}

# Outputs only a stack with SignedPlayback=enabled has; absent means the stage does not sign.
OPTIONAL_OUTPUT_ENV: dict[str, str] = {
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


def render_config(config: Mapping[str, Any], stage: str, outputs: Mapping[str, str]) -> dict[str, Any]:
    """The stage's config with the stack's real names layered over the checked-in placeholders."""
    if stage not in STAGES:
        raise StageConfigError(f"stage {stage!r} is not deployable to AWS; use one of {', '.join(STAGES)}")
    out = copy.deepcopy(dict(config))
    stages = out.setdefault("stages", {})
    if stage not in stages:
        raise StageConfigError(f"stage {stage!r} missing from .chalice/config.json")
    stage_cfg = stages[stage]
    env = stage_cfg.setdefault("environment_variables", {})
    env.update(stage_environment(outputs))
    env["STAGE"] = stage
    if not stage_cfg.get("iam_policy_file"):
        raise StageConfigError(f"stage {stage!r} has no iam_policy_file: autogen_policy reads only app.py")
    return out


def prepare_project(root: Path, stage: str, outputs: Mapping[str, str], dest: Path) -> Path:
    """Copy the shipped sources into dest and write the generated .chalice/ beside them."""
    config = json.loads((root / ".chalice" / "config.json").read_text())
    rendered = render_config(config, stage, outputs)
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
    deployed = root / ".chalice" / "deployed"
    deployed.mkdir(exist_ok=True)
    (chalice_dir / "deployed").symlink_to(deployed.resolve(), target_is_directory=True)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/stage_config.py")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="generate the Chalice project for a stage from stack outputs")
    prep.add_argument("--stage", required=True, choices=STAGES)
    prep.add_argument("--outputs", required=True, type=Path, help="JSON from describe-stacks")
    prep.add_argument("--dest", required=True, type=Path)
    arn = sub.add_parser("function-arn", help="print a deployed function's ARN")
    arn.add_argument("--deployed", required=True, type=Path)
    arn.add_argument("--name", required=True)
    env = sub.add_parser("env", help="print the stage environment as KEY=VALUE lines")
    env.add_argument("--outputs", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            outputs = outputs_from_describe(json.loads(args.outputs.read_text()))
            print(prepare_project(ROOT, args.stage, outputs, args.dest))
        elif args.command == "function-arn":
            print(function_arn(json.loads(args.deployed.read_text()), args.name))
        else:
            for k, v in stage_environment(outputs_from_describe(json.loads(args.outputs.read_text()))).items():
                print(f"{k}={v}")
    except (StageConfigError, OSError, ValueError, KeyError) as exc:
        print(f"stage_config: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
