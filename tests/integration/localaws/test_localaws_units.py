"""Pure rules of the emulator and deployer (no server): fast, so they run in every suite."""

from __future__ import annotations

import copy
import json
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from devtools.localaws.deploy import DeployError, load_stage_config, package, render_asl
from devtools.localaws.patches import _batch_item_failures
from devtools.localaws.stats import RequestStats, classify

IDS = {"a", "b", "c"}


@pytest.mark.parametrize(
    ("payload", "failed"),
    [
        (json.dumps({"batchItemFailures": []}), set()),
        (json.dumps({"batchItemFailures": [{"itemIdentifier": "b"}]}), {"b"}),
        (json.dumps(None), set()),  # a handler returning nothing: the whole batch succeeded
        (json.dumps({"batchItemFailures": [{"itemIdentifier": "zzz"}]}), IDS),  # unknown id: all fail
        (json.dumps({"batchItemFailures": [{"itemIdentifier": ""}]}), IDS),  # empty id: all fail
        (json.dumps({"batchItemFailures": "b"}), IDS),  # malformed: all fail
        ("not json", IDS),
    ],
)
def test_batch_item_failures_follow_lambdas_rules(payload: str, failed: set[str]) -> None:
    assert _batch_item_failures(payload, IDS) == failed


def test_render_asl_fills_every_placeholder_and_names_the_missing_ones() -> None:
    text = '{"Resource": "${FnArn}", "Comment": "${Stage}"}'
    assert json.loads(render_asl(text, {"FnArn": "arn:x", "Stage": "local"})) == {
        "Resource": "arn:x", "Comment": "local"}
    with pytest.raises(DeployError, match=r"channel.asl.json: no value for placeholder\(s\) Stage"):
        render_asl(text, {"FnArn": "arn:x"}, source="channel.asl.json")


def test_render_asl_refuses_a_substitution_that_breaks_the_json() -> None:
    with pytest.raises(ValueError):
        render_asl('{"a": "${X}"}', {"X": 'quote"breaks'})


def test_package_ships_what_chalice_ships_and_is_byte_identical_across_runs(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / "chalicelib" / "__pycache__").mkdir(parents=True)
    (tmp_path / "chalicelib" / "__init__.py").write_text("")
    (tmp_path / "chalicelib" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    first = package(tmp_path)
    names = zipfile.ZipFile(BytesIO(first)).namelist()
    assert names == ["app.py", "chalicelib/__init__.py"]
    assert package(tmp_path) == first


def test_stage_config_merges_top_level_stage_and_errors_on_unknown_stage(tmp_path: Path) -> None:
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "app_name": "x", "environment_variables": {"A": "top", "B": "top"}, "lambda_timeout": 30,
        "stages": {"local": {"environment_variables": {"B": "stage"},
                             "lambda_functions": {"f": {"lambda_timeout": 5}}}},
    }))
    cfg = load_stage_config(tmp_path, "local")
    assert cfg["env"] == {"A": "top", "B": "stage"}
    assert cfg["timeout"] == 30
    assert cfg["lambda_functions"]["f"]["lambda_timeout"] == 5
    with pytest.raises(DeployError, match="stage 'prod' not in"):
        load_stage_config(tmp_path, "prod")



# -- request accounting (GET /_localaws/stats) ---------------------------------------------------
def _signed(service: str, key: str = "test") -> str:
    return (f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=abc")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/origin/ch/360p/00000001.m4s", "HTTP_AUTHORIZATION": _signed("s3")},
         ("test", "s3", "PutObject")),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/origin/ch/a.m4s", "HTTP_AUTHORIZATION": _signed("s3"),
          "HTTP_X_AMZ_COPY_SOURCE": "/origin/ch/b.m4s"}, ("test", "s3", "CopyObject")),
        ({"REQUEST_METHOD": "HEAD", "PATH_INFO": "/origin/ch/360p/init.mp4", "HTTP_AUTHORIZATION": _signed("s3")},
         ("test", "s3", "HeadObject")),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/ingest", "QUERY_STRING": "list-type=2&prefix=ch%2F",
          "HTTP_AUTHORIZATION": _signed("s3", "bench")}, ("bench", "s3", "ListObjectsV2")),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/ingest", "QUERY_STRING": "notification",
          "HTTP_AUTHORIZATION": _signed("s3")}, ("test", "s3", "PutBucketNotification")),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/ingest", "QUERY_STRING": "delete",
          "HTTP_AUTHORIZATION": _signed("s3")}, ("test", "s3", "DeleteObjects")),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/ingest/ch/1.ts",
          "QUERY_STRING": "X-Amz-Credential=enc%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x"},
         ("enc", "s3", "GetObject")),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_AUTHORIZATION": _signed("dynamodb"),
          "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem"}, ("test", "dynamodb", "UpdateItem")),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_AUTHORIZATION": _signed("sqs"),
          "HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"}, ("test", "sqs", "SendMessage")),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/2015-03-31/functions/slipstream-local-x/invocations",
          "HTTP_AUTHORIZATION": _signed("lambda")}, ("test", "lambda", "Invoke")),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/2020-05-31/distribution/E1/invalidation",
          "HTTP_AUTHORIZATION": _signed("cloudfront")}, ("test", "cloudfront", "CreateInvalidation")),
    ],
)
def test_each_request_is_counted_under_its_caller_service_and_operation(
        environ: dict[str, str], expected: tuple[str, str, str]) -> None:
    assert classify(environ) == expected


def test_the_write_log_keeps_manifest_text_says_what_it_lost_and_filters_by_bucket() -> None:
    stats = RequestStats(max_writes=3)
    stats.object_written("origin", "ch/360p/live.m3u8", 7, "e1", lambda: b"#EXTM3U")
    stats.object_written("origin", "ch/360p/00000001.m4s", 5, "e2", lambda: b"\0" * 5)
    stats.object_written("ingest", "ch/00000002.ts", 5, "e3", lambda: b"\0" * 5)
    stats.object_written("origin", "ch/manifest.mpd", 5, "e4", lambda: b"<MPD>")
    got = stats.writes(after=0, bucket="origin")
    assert got["last"] == 4 and got["lost"] == 1  # write 1 fell out of the ring of 3
    assert [(w["key"], w.get("text")) for w in got["writes"]] == [
        ("ch/360p/00000001.m4s", None), ("ch/manifest.mpd", "<MPD>")]
    assert stats.writes(after=4)["writes"] == [] and stats.writes(after=4)["lost"] == 0


# -- DynamoDB responses: the fast AttributeValue path writes what moto's generic serializer writes ----
ITEM = {
    "pk": {"S": "CH#x"}, "seq": {"N": "12"}, "blob": {"B": b"\x00\xffbin"}, "tags": {"SS": ["a", "b"]},
    "nums": {"NS": ["1", "2.5"]}, "bins": {"BS": [b"\x01", b"\x02"]}, "flag": {"BOOL": False},
    "none": {"NULL": True}, "empty_s": {"S": ""},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"M": {}}, {"L": []}]}, "b": {"B": b"z"}}},
}


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        ("GetItem", {"Item": ITEM}),
        ("GetItem", {}),
        ("Query", {"Items": [ITEM, {"pk": {"S": "CH#y"}}], "Count": 2, "ScannedCount": 2,
                   "LastEvaluatedKey": {"pk": {"S": "CH#y"}, "sk": {"S": "SEG#1"}}}),
        ("UpdateItem", {"Attributes": ITEM, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}),
        ("BatchGetItem", {"Responses": {"t": [ITEM]}, "UnprocessedKeys": {}}),
    ],
)
def test_the_fast_dynamodb_serializer_writes_what_the_generic_one_writes(operation: str, result: Any) -> None:
    from moto.core import serialize
    from moto.core.responses import ActionContext, ActionResult
    from moto.core.utils import get_service_model
    from moto.dynamodb.responses import DynamoHandler

    from devtools.localaws.patches import install_fast_dynamodb_serializer

    cls = serialize.get_serializer_class("dynamodb", "json")
    model = get_service_model("dynamodb")
    context = ActionContext(model, model.operation_model(operation), cls, DynamoHandler())

    def body() -> Any:
        return json.loads(ActionResult(copy.deepcopy(result)).execute_result(context)[2])

    generic = body()
    saved = cls._serialize_type_structure
    try:
        install_fast_dynamodb_serializer()
        assert cls._serialize_type_structure is not saved
        assert body() == generic
    finally:
        cls._serialize_type_structure = saved


def _tree(node: Any) -> Any:
    """A parse tree as plain data (class names, attributes, children), without parent links."""
    if isinstance(node, list | tuple):
        return [_tree(n) for n in node]
    if hasattr(node, "__dict__"):
        return (type(node).__name__, {k: _tree(v) for k, v in sorted(vars(node).items()) if k != "parent"})
    return node


def test_a_kept_update_expression_tree_is_never_changed_by_running_an_update() -> None:
    import boto3
    from moto import mock_aws
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from devtools.localaws.patches import install_update_expression_cache

    saved = UpdateExpressionParser.__dict__["make"]
    expr = "SET #w = if_not_exists(#w, :zero) + :one, #e = :msg"
    try:
        install_update_expression_cache()
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="eu-west-3", aws_access_key_id="k",
                               aws_secret_access_key="k")
            ddb.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST")
            tree = UpdateExpressionParser.make(expr)
            before = _tree(tree)
            for i in range(3):
                ddb.update_item(TableName="t", Key={"pk": {"S": "k"}}, UpdateExpression=expr,
                                ExpressionAttributeNames={"#w": "work", "#e": "error"},
                                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"},
                                                           ":msg": {"S": f"m{i}"}})
            item = ddb.get_item(TableName="t", Key={"pk": {"S": "k"}})["Item"]
        assert item["work"] == {"N": "3"} and item["error"] == {"S": "m2"}
        assert UpdateExpressionParser.make(expr) is tree and _tree(tree) == before
        with pytest.raises(Exception):  # noqa: B017 -- moto's own syntax error, whatever its class
            UpdateExpressionParser.make("SET = oops")
    finally:
        UpdateExpressionParser.make = saved


def test_a_partition_query_returns_what_moto_returns_scanning_the_whole_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import boto3
    from moto import mock_aws
    from moto.dynamodb.models.table import Table

    from devtools.localaws.patches import install_partition_query

    saved = Table.__dict__["query"]

    def run_queries(ddb: Any) -> list[Any]:
        out = []
        for kwargs in (
            {"KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
             "ExpressionAttributeValues": {":p": {"S": "CH#b"}, ":lo": {"S": "SEG#000003"},
                                           ":hi": {"S": "SEG#000007"}}},
            {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "CH#a"}},
             "ScanIndexForward": False, "Limit": 4},
            {"KeyConditionExpression": "pk = :p AND begins_with(sk, :s)", "FilterExpression": "n > :two",
             "ExpressionAttributeValues": {":p": {"S": "CH#c"}, ":s": {"S": "SEG#"}, ":two": {"N": "2"}}},
            {"KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi", "Limit": 2, "ScanIndexForward": False,
             "ExpressionAttributeValues": {":p": {"S": "CH#a"}, ":lo": {"S": "SEG#000002"},
                                           ":hi": {"S": "SEG#000008"}}},
            {"KeyConditionExpression": "pk = :p AND sk > :lo", "ExpressionAttributeValues": {
                ":p": {"S": "CH#c"}, ":lo": {"S": "SEG#000006"}}},
            {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "CH#nobody"}}},
            {"KeyConditionExpression": "g = :g", "IndexName": "by-g", "ExpressionAttributeValues": {":g": {"S": "x"}}},
        ):
            pages, start = [], None
            while True:
                resp = ddb.query(TableName="partitioned", **kwargs, **({"ExclusiveStartKey": start} if start else {}))
                pages.append((resp["Items"], resp["Count"], resp["ScannedCount"], resp.get("LastEvaluatedKey")))
                start = resp.get("LastEvaluatedKey")
                if not start:
                    break
            out.append(pages)
        return out

    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # in-process moto, not an emulator an earlier test pointed boto3 at
    try:
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="ap-south-2", aws_access_key_id="k", aws_secret_access_key="k")
            ddb.create_table(
                TableName="partitioned", BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g")],
                GlobalSecondaryIndexes=[{"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                         "Projection": {"ProjectionType": "ALL"}}])
            for ch in "abc":
                for i in (9, 1, 5, 3, 7, 0, 8, 2, 6, 4):
                    ddb.put_item(TableName="partitioned", Item={"pk": {"S": f"CH#{ch}"}, "sk": {"S": f"SEG#{i:06d}"},
                                                      "n": {"N": str(i)}, "g": {"S": "x" if i % 3 else "y"}})
                ddb.put_item(TableName="partitioned", Item={"pk": {"S": f"CH#{ch}"}, "sk": {"S": "META"}})
            generic = run_queries(ddb)
            install_partition_query()
            assert Table.__dict__["query"] is not saved
            assert run_queries(ddb) == generic
            # a miss adds no partition (moto's own query may have added CH#nobody above: ask for another)
            miss = ddb.query(TableName="partitioned", KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {"S": "CH#ghost"}})
            assert miss["Items"] == [] and miss["Count"] == 0
            assert "CH#ghost" not in {k.value for k in ddb_tables(ddb)}
    finally:
        Table.query = saved


def ddb_tables(ddb: Any) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    # whatever account moto is on (an earlier test in the session may have set another default)
    tables = [b.tables for _, region, b in dynamodb_backends.iter_backends() if region == "ap-south-2"]
    return next(t["partitioned"] for t in tables if "partitioned" in t).items.keys()


def test_the_flat_regular_json_of_an_item_is_what_moto_writes_and_shares_nothing_with_it() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from devtools.localaws.patches import install_flat_regular_json

    attrs = {**ITEM, "runs": {"L": [{"M": {"run": {"N": "1"}, "slates": {"NS": ["3", "4"]},
                                           "deep": {"M": {"x": {"L": [{"SS": ["a"]}, {"B": b"\x00"}]}}}}}]}}
    saved = DynamoType.__dict__["to_regular_json"]
    try:
        item = Item(DynamoType({"S": "CH#x"}), DynamoType({"S": "PUB"}), attrs)
        generic = copy.deepcopy(item.to_json())
        generic_regular = item.to_regular_json()
        install_flat_regular_json()
        assert DynamoType.__dict__["to_regular_json"] is not saved
        got = item.to_json()
        assert got == generic and item.to_regular_json() == generic_regular
        got["Attributes"]["runs"]["L"][0]["M"]["slates"]["NS"].append("9")  # a fresh structure, not the item's
        got["Attributes"]["m"]["M"]["inner"]["L"].clear()
        assert item.to_json() == generic
    finally:
        DynamoType.to_regular_json = saved
