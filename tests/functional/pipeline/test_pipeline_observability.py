"""What an operator reads from one pipeline invocation: JSON log lines that name the function's
request, the channel and the chunk, and one EMF document with every metric of the invocation
(the Powertools middleware app.py registers; nothing else flushes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.test import Client
from pipeline_harness import Pipeline

from chalicelib import obs
from tests.support.logs import captured_logs

CH = "news"


def emf_documents(out: str) -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    return [d for d in docs if "ColdStart" not in d]  # the first invocation of a process also says so


def metric_names(doc: dict[str, Any]) -> set[str]:
    return {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_a_transcode_invocation_logs_json_with_request_channel_and_seq_and_flushes_metrics_once(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from app import app
    from chalicelib.pipeline import deps as deps_mod

    pipe.channel(CH)
    assert pipe.push(CH, 0) == ["accepted"]
    [message] = [m for m in pipe.receive("transcode") if '"kind": "chunk"' in m["Body"]]
    monkeypatch.setattr(deps_mod, "default", lambda: pipe.deps)
    capsys.readouterr()
    with Client(app, stage_name="local") as client, captured_logs() as lines:
        event = client.events.generate_sqs_event(queue_name="slipstream-transcode", message_bodies=[message["Body"]])
        assert client.lambda_.invoke("transcode_chunk", event).payload == ["done"]

    # One flush: the worker's timings and the packager's latency (it packages inline) share it.
    [doc] = emf_documents(capsys.readouterr().out)
    assert {"TranscodeSeconds", "TranscodeCpuSeconds", "SegmentLatency"} <= metric_names(doc)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == obs.NAMESPACE
    assert [sorted(d) for d in directive["Dimensions"]] == [["service", "stage"]]
    assert (doc["service"], doc["stage"]) == (obs.SERVICE, obs.STAGE)

    [done] = [line for line in lines if line["message"] == "chunk transcoded"]
    assert (done["channel"], done["seq"], done["level"], done["service"]) == (CH, 0, "INFO", obs.SERVICE)
    assert done["function_request_id"] and done["function_name"]
    assert len({line["function_request_id"] for line in lines}) == 1  # every line names this invocation


def test_a_malformed_job_is_logged_as_an_error_naming_the_invocation(
    pipe: Pipeline, capsys: pytest.CaptureFixture[str],
) -> None:
    from app import app

    with Client(app, stage_name="local") as client, captured_logs() as lines:
        event = client.events.generate_sqs_event(queue_name="slipstream-transcode", message_bodies=["{not json"])
        [result] = client.lambda_.invoke("transcode_chunk", event).payload
    assert result.startswith("dropped: ")
    [line] = [x for x in lines if x["message"].startswith("malformed")]
    assert line["level"] == "ERROR" and line["function_request_id"] and "error" in line
    assert "channel" not in line  # keys bound by an earlier invocation do not leak into this one
    assert emf_documents(capsys.readouterr().out) == []  # nothing counted, nothing flushed
