"""infra/template.yaml's alarms and dashboard watch what the code really emits, under the names and
dimensions it really uses, for every queue and function the stage has; docs/deploy.md explains each.

An alarm on a misspelt metric or a dimension the code never sets stays green forever: these are
the checks that catch it without an AWS account.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib import obs

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "deploy.md"
# Metrics the lead's timeline work adds (slate slots, chunks later than their slot); the alarms and
# dashboard are ready for them. Drop a name from here once chalicelib emits it.
PENDING_METRICS: set[str] = set()
API_GATEWAY_TIMEOUT_S = 29  # REST integration limit: the API handler's real time budget


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric an alarm reads: {Namespace, MetricName, Dimensions} (plain or inside Metrics)."""
    if "MetricName" in alarm:
        return [{k: alarm.get(k) for k in ("Namespace", "MetricName", "Dimensions")}]
    return [q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q]


def dims(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions") or []}


def emitted_metrics() -> set[str]:
    """Metric names chalicelib adds (Powertools add_metric / single_metric with a literal name)."""
    names: set[str] = set()
    for path in (ROOT / "chalicelib").rglob("*.py"):
        names |= set(re.findall(r"""(?:add_metric|single_metric)\(\s*name=["'](\w+)["']""", path.read_text()))
    return names


def dashboard(template: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, Any]:
    sub_args = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # Fn::Sub [body, {variables}]: a variable (the distribution, which Cdn=none stacks lack) stands
    # for whatever it names.
    body, variables = (sub_args, {}) if isinstance(sub_args, str) else sub_args
    values = {"AppName": "slipstream", "Stage": "prod", "AWS::Region": "eu-west-1", "MetricsNamespace": "Slipstream",
              "ServiceName": "slipstream", "SegmentDurationSeconds": "2", "SegmentLatencyBudget": "2",
              "InputGapSeconds": "6", "Cdn5xxRatePercent": "1", **{k: f"<{k}>" for k in variables}, **(params or {})}
    resources = template["Resources"]

    def sub(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref in values:
            return values[ref]
        name = ref.split(".")[0]
        assert name in resources, f"dashboard refers to ${{{ref}}}, which is neither a parameter nor a resource"
        return f"<{ref}>"

    return dict(json.loads(re.sub(r"\$\{([A-Za-z0-9:.]+)\}", sub, body)))


def dashboard_metrics(board: dict[str, Any]) -> list[list[Any]]:
    return [m for w in board["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]


def test_every_alarm_notifies_the_stage_topic_on_alarm_and_on_recovery(template: dict[str, Any]) -> None:
    found = alarms(template)
    assert len(found) >= 20
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${AppName}-${Stage}-"), name
    sub = template["Resources"]["AlarmEmailSubscription"]
    assert sub["Condition"] == "HasAlarmEmail" and sub["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""  # the e-mail is optional


def test_every_dead_letter_queue_has_a_depth_alarm(template: dict[str, Any]) -> None:
    dlqs = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::SQS::Queue" and k.endswith("DLQ")}
    assert dlqs == {"TranscodeDLQ", "PackageDLQ", "IngestEventsDLQ"}
    watched = {
        dims(m)["QueueName"]["Fn::GetAtt"][0]
        for a in alarms(template).values() for m in metric_stats(a)
        if m["Namespace"] == "AWS/SQS" and m["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Threshold"] <= 1 and a["Statistic"] == "Maximum"
    }
    assert watched == dlqs


def test_every_function_the_stage_deploys_has_errors_throttles_and_duration_alarms(
    template: dict[str, Any], packaged: tuple[Any, Path]
) -> None:
    """The function list comes from `chalice package` itself, so a new handler in app.py fails this
    test until it has alarms; names are chalice deploy's, thresholds 80% of each lambda_timeout."""
    proc, out = packaged
    assert proc.returncode == 0, proc.stderr
    from cfnlint.decode import decode

    sam, errors = decode(str(out / "sam.yaml"))
    assert not errors and sam is not None
    functions = {}
    for fn in sam["Resources"].values():
        if fn["Type"] != "AWS::Serverless::Function":
            continue
        handler = fn["Properties"]["Handler"].split(".", 1)[1]  # app.<name>; app.app is the API handler
        deployed = "${AppName}-${Stage}" if handler == "app" else f"${{AppName}}-${{Stage}}-{handler}"
        budget = float(fn["Properties"]["Timeout"])
        functions[deployed] = min(budget, API_GATEWAY_TIMEOUT_S) if handler == "app" else budget
    assert len(functions) == 6, sorted(functions)
    by_metric: dict[str, dict[str, float]] = {"Errors": {}, "Throttles": {}, "Duration": {}}
    for alarm in alarms(template).values():
        if alarm.get("Namespace") == "AWS/Lambda":
            by_metric[alarm["MetricName"]][dims(alarm)["FunctionName"]["Fn::Sub"]] = float(alarm["Threshold"])
    assert set(by_metric["Errors"]) == set(by_metric["Throttles"]) == set(by_metric["Duration"]) == set(functions)
    for name, seconds in functions.items():
        assert by_metric["Errors"][name] == by_metric["Throttles"][name] == 1
        assert by_metric["Duration"][name] == pytest.approx(0.8 * seconds * 1000), name


def test_xray_is_on_for_the_aws_stages_and_every_packaged_function_is_traced(
    chalice_config: dict[str, Any], packaged: tuple[Any, Path]
) -> None:
    assert {s: chalice_config["stages"][s].get("xray") for s in ("dev", "prod")} == {"dev": True, "prod": True}
    _, out = packaged
    text = (out / "sam.yaml").read_text()
    assert text.count("Tracing: Active") == text.count("AWS::Serverless::Function") > 0


def test_pipeline_alarms_watch_metrics_the_code_emits_with_the_dimensions_it_sets(
    template: dict[str, Any], chalice_config: dict[str, Any]
) -> None:
    emitted = emitted_metrics()
    assert {"TranscodeErrors", "SlateSegments", "SegmentLatency", "InputGapSeconds"} <= emitted
    watched = set()
    for name, alarm in alarms(template).items():
        for m in metric_stats(alarm):
            if m["Namespace"] != {"Ref": "MetricsNamespace"}:
                continue
            watched.add(m["MetricName"])
            assert m["MetricName"] in emitted | PENDING_METRICS, f"{name} watches {m['MetricName']}, never emitted"
            # chalicelib.obs puts exactly these dimensions on every pipeline metric.
            assert dims(m) == {"service": {"Ref": "ServiceName"}, "stage": {"Ref": "Stage"}}, name
            assert set(dims(m)) == set(obs.DIMENSIONS), name
    assert {"TranscodeErrors", "SlateSegments", "LateChunks", "SegmentLatency"} <= watched
    # The template's defaults are what the AWS stages of .chalice/config.json emit.
    params = template["Parameters"]
    for stage in ("dev", "prod"):
        env = {**chalice_config["environment_variables"], **chalice_config["stages"][stage]["environment_variables"]}
        assert params["MetricsNamespace"]["Default"] == env["POWERTOOLS_METRICS_NAMESPACE"]
        assert params["ServiceName"]["Default"] == env["POWERTOOLS_SERVICE_NAME"]
        assert float(params["SegmentDurationSeconds"]["Default"]) == float(env["SEGMENT_DURATION"])


def test_the_input_gap_alarm_evaluates_each_channel_as_the_watchdog_reports_it(
    template: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """One Metrics Insights alarm grouped by channel: SCHEMA(...) must list exactly the dimensions
    the lifecycle's EMF carries, or the query matches nothing."""
    from chalicelib.control.adapters import EmfMetrics

    alarm = alarms(template)["InputGapAlarm"]
    [query] = alarm["Metrics"]
    sql = " ".join(query["Expression"]["Fn::Sub"].split())
    schema = re.search(r'SCHEMA\("\$\{MetricsNamespace\}", ([\w, ]+)\)', sql)
    assert schema, sql
    assert sql.startswith("SELECT MAX(InputGapSeconds)") and sql.endswith("GROUP BY channel")
    assert "service = '${ServiceName}'" in sql and "stage = '${Stage}'" in sql
    EmfMetrics("Slipstream", dict(obs.DIMENSIONS)).input_gap("news", 9.0)  # as chalicelib.root wires it
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [emitted] = emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(emitted) == sorted(d.strip() for d in schema.group(1).split(","))
    # The watchdog emits only past InputGapSeconds (the ASL's gap_after): alarm on the same number.
    assert alarm["Threshold"] == {"Ref": "InputGapSeconds"} and alarm["TreatMissingData"] == "notBreaching"
    assert query["Period"] == 60 and query["ReturnData"] is True


def test_latency_is_alarmed_in_segment_durations_and_the_cdn_alarm_lives_where_cloudfront_reports(
    template: dict[str, Any],
) -> None:
    latency = alarms(template)["SegmentLatencyAlarm"]
    stats = {q["Id"]: q for q in latency["Metrics"]}
    assert stats["p95"]["MetricStat"]["Stat"] == "p95"
    assert stats["segments"]["Expression"] == {"Fn::Sub": "p95 / ${SegmentDurationSeconds}"}
    assert latency["Threshold"] == {"Ref": "SegmentLatencyBudget"}
    cdn = template["Resources"]["Cdn5xxRateAlarm"]
    # CloudFront metrics exist in us-east-1 only, and only for a stack with a distribution.
    assert template["Conditions"][cdn["Condition"]] == {"Fn::And": [{"Condition": "InUsEast1"},
                                                                    {"Condition": "HasCdn"}]}
    assert cdn["Properties"]["MetricName"] == "5xxErrorRate"
    assert dims(cdn["Properties"]) == {"DistributionId": {"Ref": "Distribution"}, "Region": "Global"}


def test_the_dashboard_shows_every_metric_the_code_emits_on_a_valid_non_overlapping_grid(
    template: dict[str, Any],
) -> None:
    board = dashboard(template)
    shown = {m[1] for m in dashboard_metrics(board) if isinstance(m, list) and m[0] == "Slipstream"}
    queries = " ".join(m[0]["expression"] for m in dashboard_metrics(board) if isinstance(m[0], dict))
    assert emitted_metrics() <= shown | set(re.findall(r"MAX\((\w+)\)", queries))
    assert shown <= emitted_metrics() | PENDING_METRICS
    for m in dashboard_metrics(board):
        if isinstance(m, list) and m[0] == "Slipstream":
            assert dict(zip(m[2:-1:2], m[3:-1:2], strict=True)) == {"service": "slipstream", "stage": "prod"}, m
    cells: set[tuple[int, int]] = set()
    for w in board["widgets"]:
        assert w["x"] + w["width"] <= 24, w
        mine = {(x, y) for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])}
        assert not cells & mine, f"widget overlaps another: {w['properties'].get('title')}"
        cells |= mine
    # The alarm widget lists every alarm of the stack (except the us-east-1-only CDN alarm).
    [status] = [w for w in board["widgets"] if w["type"] == "alarm"]
    listed = {a.strip("<>").split(".")[0] for a in status["properties"]["alarms"]}
    assert listed == set(alarms(template)) - {"Cdn5xxRateAlarm"}


def test_docs_explain_every_alarm(template: dict[str, Any]) -> None:
    text = DOCS.read_text()
    section = text[text.index("## Alarms"):]
    for name, alarm in alarms(template).items():
        suffix = alarm["AlarmName"]["Fn::Sub"].removeprefix("${AppName}-${Stage}-")
        for function in ("api", "on_segment_uploaded_queued", "transcode_chunk", "package_channel", "lifecycle",
                         "ll_origin"):
            suffix = re.sub(rf"^{function}-(errors|throttles|duration)$", r"{function}-\1", suffix)
        assert f"`{suffix}`" in section, f"docs/deploy.md, Alarms, does not explain {name} (`{suffix}`)"
