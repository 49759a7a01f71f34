"""HTTP edge of the control API: auth, domain errors -> HTTP errors (the ONE place), JSON out.

Every 4xx/5xx body is {"error": "<ErrorName>", "message": "<what was wrong>"}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response

from ..errors import (
    ConflictError,
    InvalidMediaError,
    NotFoundError,
    SlipstreamError,
    StoreError,
    UnauthorizedError,
    ValidationError,
)
from ..obs import bind, logger
from . import auth

# Order matters: the first matching class wins (subclasses before their bases).
STATUS: tuple[tuple[type[SlipstreamError], int], ...] = (
    (ValidationError, 400),
    (InvalidMediaError, 400),
    (UnauthorizedError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),  # includes StateTransitionError
    (StoreError, 503),  # includes ConcurrentUpdateError: safe to retry
)


def status_for(error: SlipstreamError) -> int:
    for cls, code in STATUS:
        if isinstance(error, cls):
            return code
    return 500


def error_response(error: SlipstreamError) -> Response:
    code = status_for(error)
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if code == 401:
        headers["WWW-Authenticate"] = "ApiKey"
    if code == 503:
        headers["Retry-After"] = "1"
    body: dict[str, object] = {"error": type(error).__name__, "message": str(error)}
    body.update(getattr(error, "details", None) or {})  # e.g. the break's state on a 409
    return Response(body=body, status_code=code, headers=headers)


def request_body(app: Chalice) -> bytes:
    request = app.current_request
    raw = b"" if request is None else request.raw_body or b""
    return raw.encode() if isinstance(raw, str) else raw


def query_param(app: Chalice, name: str) -> str | None:
    request = app.current_request
    params: dict[str, str] = dict((request.query_params if request is not None else None) or {})
    value = params.get(name)
    return None if value is None else str(value)


def with_cookies(result: dict[str, Any]) -> Response:
    """A use case's result whose `set_cookie` list becomes Set-Cookie headers (one per cookie),
    not body fields. Never cacheable: it carries one viewer's credentials."""
    body = dict(result)
    cookies = body.pop("set_cookie", None) or []
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if cookies:
        headers["Set-Cookie"] = list(cookies)
    return Response(body=body, status_code=200, headers=headers)


def endpoint(
    app: Chalice, settings: Callable[[], Any], status_code: int = 200
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Wrap a route handler: authenticate, run, map domain errors, serialise with `status_code`.

    Every log line of the request carries the channel (from the route's {channel_id}) and API
    Gateway's request id, next to the Lambda request id the logging middleware adds."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(view)
        def handler(*args: Any, **kwargs: Any) -> Response:
            request = app.current_request
            assert request is not None  # Chalice sets it before calling a route
            api_keys = settings().api_keys  # a broken stage config is a 500, not the client's fault
            context = request.context or {}
            with bind(channel=(request.uri_params or {}).get("channel_id"), api_request_id=context.get("requestId"),
                      route=f"{request.method} {context.get('resourcePath', '')}"):
                try:
                    auth.check(api_keys, request.headers or {}, context)
                    result = view(*args, **kwargs)
                except SlipstreamError as e:
                    if status_for(e) >= 500:
                        logger.exception("control API failure", extra={"error": type(e).__name__})
                    return error_response(e)
            if isinstance(result, Response):
                return result
            return Response(body=result, status_code=status_code, headers={"Content-Type": "application/json"})

        return handler

    return wrap
