"""The control plane's logs as an operator reads them in CloudWatch: one JSON object per line
(Powertools Logger, through the middleware app.py registers), naming the channel, the API
Gateway request and the Lambda request, for API routes and the lifecycle function alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
from control_harness import Api

from chalicelib import obs
from tests.support.logs import captured_logs

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def api_gateway_event(method: str, resource: str, path: str, body: Any, request_id: str) -> dict[str, Any]:
    """What API Gateway's REST proxy integration hands the function (chalice local omits requestId)."""
    from control_harness import AUTH

    params = dict(zip(resource.strip("/").split("/"), path.strip("/").split("/"), strict=True))
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": {**AUTH, "content-type": "application/json"}, "multiValueHeaders": {},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {k[1:-1]: v for k, v in params.items() if k.startswith("{")},
        "stageVariables": None, "body": json.dumps(body), "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": request_id,
                           "path": f"/api{path}", "identity": {"sourceIp": "198.51.100.7"}},
    }


def test_an_api_failure_is_logged_as_json_with_channel_route_and_both_request_ids(api: Api) -> None:
    from chalice.local import LambdaContext

    from app import app

    api.running("news")
    api.recorder.fail_republish = True
    event = api_gateway_event("POST", "/channels/{channel_id}/ad-breaks", "/channels/news/ad-breaks",
                              {"duration": 30}, request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    with captured_logs() as lines:
        resp = app(event, LambdaContext("slipstream-local", 256))
    assert resp["statusCode"] == 201 and json.loads(resp["body"])["republished"] is False
    [line] = [x for x in lines if x["message"] == "republish failed"]
    assert (line["level"], line["service"], line["channel"]) == ("ERROR", obs.SERVICE, "news")
    assert line["route"] == "POST /channels/{channel_id}/ad-breaks"
    assert line["api_request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert line["function_request_id"] and line["function_name"] == "slipstream-local"
    assert "origin bucket unavailable" in line["exception"]


def test_lifecycle_tasks_log_their_channel_and_action(api: Api) -> None:
    api.running("news")
    api.clock.advance(30)
    with captured_logs() as lines:
        out = api.client.lambda_.invoke("lifecycle", {"action": "check_input", "channel_id": "news",
                                                      "gap_after": 6, "stop_after": 600}).payload
    assert out["verdict"] == "gap"
    [line] = [x for x in lines if x["message"] == "input gap"]
    assert (line["level"], line["channel"], line["action"]) == ("WARNING", "news", "check_input")
    assert line["age_seconds"] == pytest.approx(30, abs=1) and line["function_request_id"]
    assert api.recorder.gaps and api.recorder.gaps[0][0] == "news"


def test_keys_of_one_request_do_not_leak_into_the_next(api: Api) -> None:
    from chalice.local import LambdaContext

    from app import app

    api.running("news")
    api.create("other")
    api.recorder.fail_republish = True
    event = api_gateway_event("POST", "/channels/{channel_id}/ad-breaks", "/channels/news/ad-breaks",
                              {"duration": 30}, request_id="req-1")
    with captured_logs() as first:
        app(event, LambdaContext("slipstream-local", 256))
    assert any(x.get("api_request_id") == "req-1" for x in first)
    with captured_logs() as lines:
        api.client.lambda_.invoke("lifecycle", {"action": "set_state", "channel_id": "other", "state": "ERROR",
                                                "expect": []})
    assert lines and all("api_request_id" not in x and x.get("channel") != "news" for x in lines)
