"""Walking-skeleton app for the emulator's own tests: one handler per event source the deployer wires.

Every handler records what ran it (function name, pid) in DynamoDB, so a test can prove the event
really executed deployed code in a Lambda process, not something in the test process.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
from chalice import Chalice

app = Chalice(app_name="skeleton")


def _record(pk: str, **fields: Any) -> None:
    item = {
        "pk": {"S": pk},
        "sk": {"S": "RUN"},
        "function": {"S": os.environ["AWS_LAMBDA_FUNCTION_NAME"]},
        "pid": {"N": str(os.getpid())},
    }
    item.update({k: {"S": str(v)} for k, v in fields.items()})
    boto3.client("dynamodb").put_item(TableName=os.environ["TABLE_NAME"], Item=item)


@app.on_s3_event(bucket=os.environ.get("INGEST_BUCKET", "skeleton-local-ingest"),
                 events=["s3:ObjectCreated:*"], suffix=".ts")
def on_segment_uploaded(event: Any) -> None:
    _record(f"SEG#{event.key}", etag=event.to_dict()["Records"][0]["s3"]["object"]["eTag"])


@app.on_sqs_message(queue="skeleton-local-jobs", batch_size=5)
def on_job(event: Any) -> dict[str, Any]:
    """Bodies are {"id": ..., "fail": bool}; failing ones are reported, the rest recorded."""
    failures = []
    for record in event:
        raw = record.to_dict()
        body = json.loads(record.body)
        if body.get("fail"):
            failures.append({"itemIdentifier": raw["messageId"]})
        else:
            _record(f"JOB#{body['id']}", receives=raw["attributes"]["ApproximateReceiveCount"])
    return {"batchItemFailures": failures}


@app.on_cw_event({"source": ["skeleton.test"]})
def on_event(event: Any) -> None:
    _record(f"EVT#{event.detail['id']}", detail_type=event.detail_type)


@app.lambda_function()
def record_raw_event(event: dict[str, Any], context: Any) -> None:
    """A plain EventBridge target (tests wire it to rules): records S3 "Object Created" events."""
    _record(f"RAW#{event['detail']['object']['key']}", detail_type=event["detail-type"], time=event["time"])


@app.lambda_function()
def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleeps; its config timeout is 3 s, so sleeping longer must be killed."""
    _record(f"SLOW#{event['id']}#start", remaining_ms=context.get_remaining_time_in_millis(), t=time.time())
    time.sleep(float(event["sleep"]))
    _record(f"SLOW#{event['id']}#end", t=time.time())
    return {"slept": event["sleep"]}


@app.lambda_function()
def nap(event: dict[str, Any], context: Any) -> None:
    """Like slow, but with the default 10 s timeout: for overlap tests on a loaded machine."""
    _record(f"NAP#{event['id']}#start", t=time.time())
    time.sleep(float(event["sleep"]))
    _record(f"NAP#{event['id']}#end", t=time.time())


@app.lambda_function()
def double(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"n": int(event["n"]) * 2}


class FlakyError(Exception):
    pass


@app.lambda_function()
def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fails the first two calls per id (counted in DynamoDB), then succeeds: exercises Retry."""
    counter = boto3.client("dynamodb").update_item(
        TableName=os.environ["TABLE_NAME"],
        Key={"pk": {"S": f"FLAKY#{event['id']}"}, "sk": {"S": "COUNT"}},
        UpdateExpression="ADD calls :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    calls = int(counter["Attributes"]["calls"]["N"])
    if calls < 3:
        raise FlakyError(f"call {calls} fails on purpose")
    return {"calls": calls}


@app.lambda_function()
def boom(event: dict[str, Any], context: Any) -> None:
    raise RuntimeError("boom on purpose")


@app.lambda_function()
def park_token(event: dict[str, Any], context: Any) -> None:
    """A waitForTaskToken task: parks the token where the test (standing in for the API) finds it."""
    _record(f"TOKEN#{event['id']}", token=event["token"])
