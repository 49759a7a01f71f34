"""Walking skeleton through the emulator: events really run deployed code, with AWS's delivery semantics."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.localaws import LocalAWS
from devtools.localaws.deploy import Deployment, deploy

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("aws")]

Record = Callable[[str], dict[str, Any] | None]


def test_given_a_deployed_app_when_a_segment_lands_in_ingest_then_deployed_code_records_it(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], aws_server: LocalAWS, wait_for: Any
) -> None:
    key = f"ch-{uuid.uuid4().hex[:8]}/000001.ts"
    t0 = time.perf_counter()
    put = boto("s3").put_object(Bucket=skeleton.ingest_bucket, Key=key, Body=b"\x47" * 188)
    put_seconds = time.perf_counter() - t0

    item = wait_for(lambda: record(f"SEG#{key}"), timeout=30, what="the S3-triggered Lambda's record")

    fn = skeleton.function_name("on_segment_uploaded")
    assert item["function"] == fn
    assert item["etag"] == put["ETag"].strip('"')
    pid = int(item["pid"])
    assert pid not in (os.getpid(), aws_server.pid), "the handler must run in its own Lambda process"
    logs = aws_server.log_files(fn)
    assert logs and any("START RequestId" in p.read_text() for p in logs)
    # S3 invokes Lambda asynchronously: the PutObject must not wait for the handler (~0.5 s+).
    assert put_seconds < 2.0


def test_given_a_suffix_filter_when_other_objects_land_then_no_handler_runs(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], aws_server: LocalAWS
) -> None:
    fn = skeleton.function_name("on_segment_uploaded")
    before = len(aws_server.log_files(fn))
    key = f"ch-{uuid.uuid4().hex[:8]}/notes.txt"
    boto("s3").put_object(Bucket=skeleton.ingest_bucket, Key=key, Body=b"x")
    time.sleep(2)
    assert record(f"SEG#{key}") is None
    assert len(aws_server.log_files(fn)) == before


def test_given_invocations_then_logs_reach_cloudwatch_too(
    skeleton: Deployment, boto: Callable[[str], Any], wait_for: Any
) -> None:
    fn = skeleton.function_name("double")
    resp = boto("lambda").invoke(FunctionName=fn, Payload=json.dumps({"n": 21}))
    assert json.loads(resp["Payload"].read()) == {"n": 42}
    logs = boto("logs")

    def report_lines() -> list[str]:
        # Lambda ships logs to CloudWatch asynchronously (LocalStack too, unlike the built-in emulator).
        try:
            streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{fn}")["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for s in streams for e in logs.get_log_events(
            logGroupName=f"/aws/lambda/{fn}", logStreamName=s["logStreamName"])["events"]
            if e["message"].startswith("REPORT RequestId")]

    assert wait_for(report_lines, timeout=10, what="the invocation's REPORT line in CloudWatch Logs")


def test_given_a_batch_with_a_poison_message_then_good_ones_are_done_and_the_poison_reaches_the_dlq(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], wait_for: Any
) -> None:
    sqs = boto("sqs")
    queue_url = skeleton.queues["skeleton-local-jobs"]
    dlq_url = skeleton.queues["skeleton-local-jobs-dlq"]
    run = uuid.uuid4().hex[:8]
    good = [f"{run}-{i}" for i in range(3)]
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[
        *({"Id": g, "MessageBody": json.dumps({"id": g})} for g in good),
        {"Id": "poison", "MessageBody": json.dumps({"id": f"{run}-poison", "fail": True})},
    ])  # fmt: skip

    for g in good:
        item = wait_for(lambda g=g: record(f"JOB#{g}"), timeout=30, what=f"job {g}")
        assert item["receives"] == "1", "a successful message is processed once and deleted"

    def poison_in_dlq() -> list[dict[str, Any]]:
        msgs = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10,
                                   AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
        return [m for m in msgs if json.loads(m["Body"])["id"] == f"{run}-poison"]

    # maxReceiveCount 3 with a 2 s visibility timeout: three failed receives, then the DLQ.
    (dead,) = wait_for(poison_in_dlq, timeout=45, interval=0.5, what="the poison message in the DLQ")
    assert int(dead["Attributes"]["ApproximateReceiveCount"]) >= 3
    assert record(f"JOB#{run}-poison") is None
    # Nothing is left in the source queue: the good ones were deleted, the poison moved.
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"


def test_given_a_rule_for_the_function_when_an_event_is_put_then_the_lambda_target_runs(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], wait_for: Any
) -> None:
    ident = uuid.uuid4().hex[:8]
    boto("events").put_events(Entries=[
        {"Source": "other.source", "DetailType": "Ignored", "Detail": json.dumps({"id": f"{ident}-other"})},
        {"Source": "skeleton.test", "DetailType": "Segment Late", "Detail": json.dumps({"id": ident})},
    ])  # fmt: skip
    item = wait_for(lambda: record(f"EVT#{ident}"), timeout=30, what="the EventBridge-triggered record")
    assert item["detail_type"] == "Segment Late"
    assert item["function"] == skeleton.function_name("on_event")
    assert record(f"EVT#{ident}-other") is None, "the rule's pattern must filter other sources"


def test_given_a_function_timeout_when_the_handler_runs_longer_then_it_is_killed_mid_way(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any]
) -> None:
    ident = uuid.uuid4().hex[:8]
    resp = boto("lambda").invoke(FunctionName=skeleton.function_name("slow"),
                                 Payload=json.dumps({"id": ident, "sleep": 6}))
    payload = json.loads(resp["Payload"].read())
    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    start = record(f"SLOW#{ident}#start")
    assert start is not None and 0 < int(start["remaining_ms"]) <= 3000  # config: slow has 3 s
    time.sleep(4.5)  # past the moment the handler would have finished had it not been killed
    assert record(f"SLOW#{ident}#end") is None


def test_given_async_invocations_then_they_run_in_parallel_and_the_caller_does_not_wait(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], wait_for: Any
) -> None:
    lam = boto("lambda")
    ids = [uuid.uuid4().hex[:8] for _ in range(3)]
    t0 = time.perf_counter()
    for ident in ids:
        resp = lam.invoke(FunctionName=skeleton.function_name("nap"), InvocationType="Event",
                          Payload=json.dumps({"id": ident, "sleep": 2}))
        assert resp["StatusCode"] == 202
    assert time.perf_counter() - t0 < 1.5, "Event invocations must return before the handler finishes"
    ends = [wait_for(lambda i=i: record(f"NAP#{i}#end"), timeout=30, what=f"slow {i}") for i in ids]
    starts = [record(f"NAP#{i}#start") for i in ids]
    latest_start = max(float(s["t"]) for s in starts if s)
    earliest_end = min(float(e["t"]) for e in ends)
    assert latest_start < earliest_end, "all three handlers should have been running at the same time"


def test_given_a_failing_async_invocation_then_lambda_retries_it_twice(
    skeleton: Deployment, boto: Callable[[str], Any], aws_server: LocalAWS, wait_for: Any
) -> None:
    fn = skeleton.function_name("boom")
    before = len(aws_server.log_files(fn))
    boto("lambda").invoke(FunctionName=fn, InvocationType="Event", Payload=b"{}")
    wait_for(lambda: len(aws_server.log_files(fn)) >= before + 3, timeout=30, what="three attempts")
    time.sleep(3)  # a fourth attempt would come within the retry delays (1 s, 2 s)
    runs = aws_server.log_files(fn)[before:]
    assert len(runs) == 3
    assert all("boom on purpose" in p.read_text() for p in runs)


def test_given_the_asl_features_we_rely_on_then_the_state_machine_runs_them_against_real_lambdas(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], wait_for: Any
) -> None:
    sfn = boto("stepfunctions")
    ident = uuid.uuid4().hex[:8]
    execution = sfn.start_execution(
        stateMachineArn=skeleton.state_machines["pipeline"], name=f"run-{ident}",
        input=json.dumps({"n": 3, "items": [1, 2, 3], "id": ident}),
    )["executionArn"]
    # waitForTaskToken: the Lambda parked the token; the execution waits until we answer.
    parked = wait_for(lambda: record(f"TOKEN#{ident}"), timeout=60, what="the parked task token")
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    sfn.send_task_success(taskToken=parked["token"], output=json.dumps({"command": "stop"}))

    def finished() -> dict[str, Any] | None:
        desc: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        return None if desc["status"] == "RUNNING" else desc

    done = wait_for(finished, timeout=30, what="the execution to finish")
    assert done["status"] == "SUCCEEDED", done
    out = json.loads(done["output"])
    assert out["doubled"] == {"n": 6}  # Task with a plain function ARN
    assert out["mapped"] == [2, 4, 6]  # Map over lambda:invoke
    assert out["flaky"] == {"calls": 3}  # Retry: two FlakyErrors, then success
    assert out["caught"]["Error"] == "RuntimeError"  # Catch
    assert out["command"] == {"command": "stop"}  # SendTaskSuccess output


def test_given_a_choice_that_fails_and_a_token_that_fails_then_the_execution_fails_with_that_error(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], wait_for: Any
) -> None:
    sfn = boto("stepfunctions")

    def finish(arn: str) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(
            lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
            timeout=60, what="execution end")
        return result

    big = sfn.start_execution(stateMachineArn=skeleton.state_machines["pipeline"],
                              input=json.dumps({"n": 6, "items": [], "id": "big"}))["executionArn"]
    assert finish(big)["status"] == "FAILED"
    ident = uuid.uuid4().hex[:8]
    ex = sfn.start_execution(stateMachineArn=skeleton.state_machines["pipeline"],
                             input=json.dumps({"n": 1, "items": [], "id": ident}))["executionArn"]
    parked = wait_for(lambda: record(f"TOKEN#{ident}"), timeout=60, what="the parked task token")
    sfn.send_task_failure(taskToken=parked["token"], error="Channel.Deleted", cause="deleted by the API")
    done = finish(ex)
    assert done["status"] == "FAILED"
    assert done.get("error") == "Channel.Deleted"


def test_given_changed_code_when_redeployed_then_the_function_runs_the_new_code_in_place(
    aws: dict[str, str], boto: Callable[[str], Any], tmp_path: Path
) -> None:
    import shutil

    app_dir = tmp_path / "app"
    shutil.copytree(Path(__file__).parent / "skeleton_app", app_dir)
    (app_dir / "statemachines" / "pipeline.asl.json").unlink()
    cfg = json.loads((app_dir / ".chalice" / "config.json").read_text())
    cfg["app_name"] = "redeploy"
    (app_dir / ".chalice" / "config.json").write_text(json.dumps(cfg))
    source = (app_dir / "app.py").read_text().replace('app_name="skeleton"', 'app_name="redeploy"')
    (app_dir / "app.py").write_text(source)
    first = deploy(app_dir, endpoint=aws["AWS_ENDPOINT_URL"])
    fn = first.function_name("double")
    assert json.loads(boto("lambda").invoke(FunctionName=fn, Payload=b'{"n": 2}')["Payload"].read()) == {"n": 4}

    (app_dir / "app.py").write_text(source.replace('int(event["n"]) * 2', 'int(event["n"]) * 3'))
    second = deploy(app_dir, endpoint=aws["AWS_ENDPOINT_URL"])
    assert second.function_arns == first.function_arns
    assert json.loads(boto("lambda").invoke(FunctionName=fn, Payload=b'{"n": 2}')["Payload"].read()) == {"n": 6}
    mappings = boto("lambda").list_event_source_mappings(FunctionName=second.function_name("on_job"))
    assert len(mappings["EventSourceMappings"]) == 1, "redeploy must not duplicate the SQS mapping"


def test_given_a_bucket_with_eventbridge_on_when_an_object_lands_then_a_rule_delivers_it_to_lambda(
    skeleton: Deployment, record: Record, boto: Callable[[str], Any], wait_for: Any
) -> None:
    s3, events = boto("s3"), boto("events")
    bucket = f"evb-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    events.put_rule(Name=f"{bucket}-created", EventPattern=json.dumps(
        {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [bucket]}}}))
    events.put_targets(Rule=f"{bucket}-created",
                       Targets=[{"Id": "1", "Arn": skeleton.function_arns["record_raw_event"]}])
    s3.put_object(Bucket=bucket, Key="ch/000042.ts", Body=b"x")
    item = wait_for(lambda: record("RAW#ch/000042.ts"), timeout=30, what="the S3 -> EventBridge -> Lambda record")
    assert item["detail_type"] == "Object Created"
    assert item["time"].endswith("Z"), "EventBridge events carry an ISO-8601 time"
