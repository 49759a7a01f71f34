"""Slipstream's Lambda entry points: decorators only.

Each handler parses its event, calls one use-case function in chalicelib, returns. Auth (API key or
IAM), body validation, error mapping and JSON out live in chalicelib.control.http.endpoint.
Powertools wraps every function (API, pipeline, lifecycle) through Chalice middleware, registered
once below: JSON logs with the Lambda context, an X-Ray subsegment, one EMF metrics flush.
"""

from __future__ import annotations

from typing import Any

from chalice import Chalice, ConvertToMiddleware

from chalicelib import root
from chalicelib.control import adbreaks as _breaks
from chalicelib.control import channels as _channels
from chalicelib.control import lifecycle as _lifecycle
from chalicelib.control import models as _m
from chalicelib.control.auth import route_authorizer
from chalicelib.control.http import endpoint as _endpoint
from chalicelib.control.http import query_param as _query
from chalicelib.control.http import request_body as _body
from chalicelib.control.http import with_cookies as _with_cookies
from chalicelib.control.openapi import document as _openapi
from chalicelib.obs import logger, metrics, tracer
from chalicelib.pipeline import handlers as pipeline
from chalicelib.pipeline import llorigin as _ll

# configure_logs=False: Chalice would otherwise set its logger, the stdlib logger named after the
# app, which is also Powertools' logger for service "slipstream", to ERROR with a plain-text handler.
app = Chalice(app_name="slipstream", configure_logs=False)
# Outermost first: log context for everything inside, then the trace, then the metrics flush.
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
app.register_middleware(ConvertToMiddleware(tracer.capture_lambda_handler(capture_response=False)))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics(capture_cold_start_metric=True)))

# --- pipeline: ingest -> transcode -> package -------------------------------------------------
# One ingest trigger per stage (pipeline.INGEST_TRIGGER), so an upload is never ingested twice.

if pipeline.INGEST_TRIGGER == "s3":  # `chalice deploy`'s native bucket notification

    @app.on_s3_event(bucket=pipeline.INGEST_BUCKET, events=["s3:ObjectCreated:*"])
    def on_segment_uploaded(event: Any) -> list[str]:
        return pipeline.on_s3(event.to_dict(), event.context)


if pipeline.INGEST_TRIGGER == "eventbridge":  # bucket with EventBridge notifications on

    @app.on_cw_event({"source": ["aws.s3"], "detail-type": ["Object Created"],
                      "detail": {"bucket": {"name": [pipeline.INGEST_BUCKET]}}})
    def on_segment_uploaded_event(event: Any) -> list[str]:
        return pipeline.on_eventbridge(event.to_dict(), event.context)


if pipeline.INGEST_TRIGGER == "sqs":  # EventBridge rule -> queue (infra/template.yaml, `chalice package`)

    @app.on_sqs_message(queue=pipeline.INGEST_EVENTS_QUEUE, batch_size=10)
    def on_segment_uploaded_queued(event: Any) -> list[str]:
        return pipeline.on_ingest_queue(event.to_dict(), event.context)


@app.on_sqs_message(queue=pipeline.TRANSCODE_QUEUE, batch_size=1)
def transcode_chunk(event: Any) -> list[str]:
    return pipeline.on_transcode(event.to_dict(), event.context)


@app.on_sqs_message(queue=pipeline.PACKAGE_QUEUE, batch_size=10)
def package_channel(event: Any) -> list[dict[str, Any]]:
    return pipeline.on_package(event.to_dict())


# --- control API: channels, ad breaks, lifecycle -----------------------------------------------
_AUTH = route_authorizer()  # IAMAuthorizer() when the stage has no API_KEYS, else None
_ctl, _cfg = root.control, root.settings


@app.route("/channels", methods=["POST"], authorizer=_AUTH)
@_endpoint(app, _cfg, 201)
def create_channel() -> Any:
    return _channels.create_channel(_ctl(), _m.parse_body(_m.CreateChannel, _body(app)))


@app.route("/channels", methods=["GET"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def list_channels() -> Any:
    return _channels.list_channels(_ctl())


@app.route("/channels/{channel_id}", methods=["GET"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def get_channel(channel_id: str) -> Any:
    return _channels.get_channel(_ctl(), channel_id)


@app.route("/channels/{channel_id}", methods=["PATCH"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def update_channel(channel_id: str) -> Any:
    body = _m.parse_body(_m.PatchChannel, _body(app))
    return _channels.patch_channel(_ctl(), channel_id, body)


@app.route("/channels/{channel_id}", methods=["DELETE"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def delete_channel(channel_id: str) -> Any:
    return _channels.delete_channel(_ctl(), channel_id)


@app.route("/channels/{channel_id}/start", methods=["POST"], authorizer=_AUTH)
@_endpoint(app, _cfg, 202)
def start_channel(channel_id: str) -> Any:
    return _channels.start_channel(_ctl(), channel_id)


@app.route("/channels/{channel_id}/stop", methods=["POST"], authorizer=_AUTH)
@_endpoint(app, _cfg, 202)
def stop_channel(channel_id: str) -> Any:
    return _channels.stop_channel(_ctl(), channel_id)


@app.route("/channels/{channel_id}/ingest-urls", methods=["POST"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def issue_ingest_urls(channel_id: str) -> Any:
    body = _m.parse_body(_m.IngestUrlsRequest, _body(app))
    return _channels.ingest_urls(_ctl(), channel_id, body)


@app.route("/channels/{channel_id}/playback", methods=["GET"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def get_playback(channel_id: str) -> Any:
    return _with_cookies(_channels.playback(_ctl(), channel_id, _query(app, "mode")))


@app.route("/channels/{channel_id}/status", methods=["GET"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def get_status(channel_id: str) -> Any:
    return _channels.status(_ctl(), channel_id)


@app.route("/channels/{channel_id}/ad-breaks", methods=["POST"], authorizer=_AUTH)
@_endpoint(app, _cfg, 201)
def insert_ad_break(channel_id: str) -> Any:
    body = _m.parse_body(_m.CreateAdBreak, _body(app))
    return _breaks.create_ad_break(_ctl(), channel_id, body)


@app.route("/channels/{channel_id}/ad-breaks", methods=["GET"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def list_ad_breaks(channel_id: str) -> Any:
    return _breaks.list_ad_breaks(_ctl(), channel_id)


@app.route("/channels/{channel_id}/ad-breaks/{break_id}", methods=["DELETE"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def end_ad_break(channel_id: str, break_id: str) -> Any:
    return _breaks.delete_ad_break(_ctl(), channel_id, break_id)


@app.route("/channels/{channel_id}/ad-breaks/{break_id}/return", methods=["POST"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def return_from_ad_break(channel_id: str, break_id: str) -> Any:
    return _breaks.return_ad_break(_ctl(), channel_id, break_id)


@app.route("/openapi.json", methods=["GET"], authorizer=_AUTH)
@_endpoint(app, _cfg)
def get_openapi() -> Any:
    return _openapi(api_keys_mode=bool(_cfg().api_keys))


@app.lambda_function(name="ll_origin")
def ll_origin(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Low-Latency HLS origin behind CloudFront (a function URL): LL playlists with blocking reload,
    delta updates and preload hints (chalicelib.pipeline.llorigin)."""
    return _ll.on_function_url(event)


@app.lambda_function(name="lifecycle")
def lifecycle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The tasks of statemachines/channel.asl.json (await_command, set_state, check_input, ...)."""
    return _lifecycle.handle(_ctl(), event)
