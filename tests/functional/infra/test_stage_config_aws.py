"""infra/stage_config.py's AWS steps against moto in-process: the table made outside the stack
(TableManagement=external) and emptying a versioned bucket before `make destroy` deletes it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.stage_config import delete_table, empty_bucket, ensure_table, table_definition

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    doc, errors = decode(str(ROOT / "infra" / "template.yaml"))
    assert not errors and doc is not None
    return dict(doc)


def test_given_no_table_when_ensured_twice_then_it_is_created_once_with_the_templates_keys_and_ttl(
    aws: None, template: dict[str, Any]
) -> None:
    ddb = boto3.client("dynamodb")
    definition = table_definition(template, "slipstream", "lsdeploy")
    assert ensure_table(ddb, definition) == "created"
    assert ensure_table(ddb, definition) == "exists"  # re-running make deploy
    table = ddb.describe_table(TableName="slipstream-lsdeploy")["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName="slipstream-lsdeploy")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert delete_table(ddb, "slipstream-lsdeploy") is True
    assert delete_table(ddb, "slipstream-lsdeploy") is False  # make destroy on a stage already gone


def test_given_a_versioned_bucket_with_old_versions_and_delete_markers_when_emptied_then_it_can_be_deleted(
    aws: None,
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ingest")
    s3.put_bucket_versioning(Bucket="ingest", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"first", b"second"):
        s3.put_object(Bucket="ingest", Key="ch/00000001.ts", Body=body)
    s3.put_object(Bucket="ingest", Key="ch/00000002.ts", Body=b"x")
    s3.delete_object(Bucket="ingest", Key="ch/00000002.ts")  # a delete marker over a version
    with pytest.raises(s3.exceptions.ClientError, match="BucketNotEmpty"):
        s3.delete_bucket(Bucket="ingest")

    assert empty_bucket(s3, "ingest") == 4  # two versions of 1, one of 2, its delete marker
    s3.delete_bucket(Bucket="ingest")
    assert empty_bucket(s3, "ingest") == 0, "a bucket already gone is empty"
