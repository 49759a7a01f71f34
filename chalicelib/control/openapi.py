"""The OpenAPI 3.1 document served at /openapi.json, generated from the request models.

ROUTES is the single list of the API's operations; a functional test checks it matches the
routes app.py actually registers, so the document cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .models import CreateAdBreak, CreateChannel, IngestUrlsRequest, PatchChannel


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    status: int = 200
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400, 401, 404)


ROUTES: tuple[Op, ...] = (
    Op("POST", "/channels", "Create a channel (starts its lifecycle execution)", 201, CreateChannel, (400, 401, 409)),
    Op("GET", "/channels", "List channels", errors=(401,)),
    Op("GET", "/channels/{channel_id}", "Get a channel"),
    Op("PATCH", "/channels/{channel_id}", "Change a channel (encoding fields only when not live)", 200,
       PatchChannel, (400, 401, 404, 409)),
    Op("DELETE", "/channels/{channel_id}", "Delete an idle, stopped or failed channel", 200, None,
       (400, 401, 404, 409)),
    Op("POST", "/channels/{channel_id}/start", "Start: IDLE/STOPPED -> STARTING -> RUNNING", 202, None,
       (400, 401, 404, 409, 503)),
    Op("POST", "/channels/{channel_id}/stop", "Stop: RUNNING -> STOPPING -> STOPPED (live-to-VOD)", 202, None,
       (400, 401, 404, 409, 503)),
    Op("POST", "/channels/{channel_id}/ingest-urls", "Presigned PUT URLs for source chunks", 200,
       IngestUrlsRequest, (400, 401, 404, 409)),
    Op("GET", "/channels/{channel_id}/playback",
       "HLS, DASH and DVR URLs; on signing stages a CloudFront custom-policy grant (?mode=cookie or query)"),
    Op("POST", "/channels/{channel_id}/ad-breaks", "Schedule an ad break (now or at a time)", 201, CreateAdBreak,
       (400, 401, 404, 409)),
    Op("GET", "/channels/{channel_id}/ad-breaks", "List ad breaks"),
    Op("DELETE", "/channels/{channel_id}/ad-breaks/{break_id}", "Cancel a pending break or return early", 200,
       None, (400, 401, 404, 409)),
    Op("POST", "/channels/{channel_id}/ad-breaks/{break_id}/return",
       "End a running break now (409 with the break's state when it is not running)", 200, None,
       (400, 401, 404, 409)),
    Op("GET", "/channels/{channel_id}/status", "State, last segment, latency, errors"),
    Op("GET", "/openapi.json", "This document", errors=(401,)),
)

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


def document(api_keys_mode: bool) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for op in ROUTES:
        params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"}}
            for name in ("channel_id", "break_id")
            if "{" + name + "}" in op.path
        ]
        responses: dict[str, Any] = {str(op.status): {"description": "OK", "content": {"application/json": {}}}}
        for code in op.errors:
            responses[str(code)] = {
                "description": {400: "invalid input (the message names the field)", 401: "missing or wrong credentials",
                                404: "unknown channel or break", 409: "illegal in the current state",
                                503: "lifecycle or store unavailable; nothing was changed"}[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        entry: dict[str, Any] = {"summary": op.summary, "parameters": params, "responses": responses}
        if op.body is not None:
            schema = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[op.body.__name__] = schema
            entry["requestBody"] = {
                "required": op.body is not PatchChannel,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    security_scheme = (
        {"type": "apiKey", "in": "header", "name": "x-api-key"}
        if api_keys_mode
        else {"type": "apiKey", "in": "header", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4"}
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Slipstream control API", "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"auth": security_scheme}},
        "security": [{"auth": []}],
    }
