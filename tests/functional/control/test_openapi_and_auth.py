"""The OpenAPI document matches the routes app.py registers; the IAM stage refuses unsigned calls."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client
from control_harness import PROJECT, Api

from chalicelib import root
from chalicelib.control.openapi import ROUTES

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_openapi_lists_exactly_the_registered_routes_with_request_schemas(api: Api) -> None:
    from app import app

    resp = api.call("GET", "/openapi.json")
    assert resp.status_code == 200
    doc = resp.json_body
    # Only the control API's paths: other areas may register their own routes (health checks...).
    registered = {
        (method, path)
        for path, entries in app.routes.items()
        for method in entries
        if path.startswith("/channels") or path == "/openapi.json"
    }
    documented = {(op.method, op.path) for op in ROUTES}
    assert registered == documented
    assert {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops} == documented
    create = doc["paths"]["/channels"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][create.rsplit("/", 1)[1]]
    assert "id" in schema["required"] and schema["additionalProperties"] is False
    assert doc["components"]["securitySchemes"]["auth"]["name"] == "x-api-key"
    json.dumps(doc)  # serialisable as served


def test_given_the_iam_stage_when_an_unsigned_request_arrives_then_401(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import app

    # The dev stage has no API_KEYS: API Gateway enforces IAM, and the handler refuses any
    # event that reaches it without an IAM caller.
    monkeypatch.delenv("API_KEYS")
    root.reset()
    with Client(app, stage_name="dev", project_dir=str(PROJECT)) as dev:
        resp = dev.http.request("GET", "/channels", headers={"x-api-key": "local-dev-key"})
    root.reset()
    assert resp.status_code == 401
    assert "IAM" in json.loads(resp.body)["message"]


def test_given_a_stage_without_api_keys_then_routes_get_the_iam_authorizer() -> None:
    from chalice import IAMAuthorizer

    from chalicelib.control.auth import route_authorizer

    assert isinstance(route_authorizer({"API_KEYS": ""}), IAMAuthorizer)
    assert route_authorizer({"API_KEYS": "k1,k2"}) is None
