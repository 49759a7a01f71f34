"""The LocalStack path: the same walking skeleton, against a LocalStack container.

Runs only with SLIPSTREAM_AWS=localstack and a usable Docker engine; otherwise every test here is
skipped with an explicit reason (never silently), so a run on a Docker-less box says what it missed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.localaws.deploy import deploy

NO_DOCKER = "no Docker engine on this machine (docker info failed): LocalStack run skipped"


def docker_usable() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _skip_reason() -> str | None:
    if not docker_usable():
        return NO_DOCKER
    if os.environ.get("SLIPSTREAM_AWS", "").lower() != "localstack":
        return ("Docker is available but SLIPSTREAM_AWS is not 'localstack': start LocalStack with "
                "`docker compose -f infra/localstack/docker-compose.yml up -d` and rerun with "
                "SLIPSTREAM_AWS=localstack")
    return None


pytestmark = [pytest.mark.integration, pytest.mark.localstack]
_REASON = _skip_reason()


@pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
def test_given_localstack_when_a_segment_lands_then_the_deployed_lambda_records_it(
    aws: dict[str, str], boto: Callable[[str], Any], wait_for: Any
) -> None:
    dep = deploy(Path(__file__).parent / "skeleton_app", endpoint=aws["AWS_ENDPOINT_URL"])
    key = f"ch-{uuid.uuid4().hex[:8]}/000001.ts"
    boto("s3").put_object(Bucket=dep.ingest_bucket, Key=key, Body=b"\x47" * 188)
    ddb = boto("dynamodb")
    item = wait_for(
        lambda: ddb.get_item(TableName=dep.table_name,
                             Key={"pk": {"S": f"SEG#{key}"}, "sk": {"S": "RUN"}}).get("Item"),
        timeout=120, what="the LocalStack Lambda's record",
    )
    assert item["function"]["S"] == dep.function_name("on_segment_uploaded")
    assert json.loads(json.dumps(item))  # a plain, serialisable DynamoDB item


def test_the_skip_reason_is_explicit_when_docker_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the contract above: a Docker-less machine reports exactly why LocalStack did not run."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _skip_reason() == NO_DOCKER
