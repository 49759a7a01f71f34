"""API authentication, one switch: API keys when the stage sets API_KEYS, IAM (SigV4) otherwise.

API-key mode: every route checks `x-api-key` in constant time against Settings.api_keys.
IAM mode: routes carry `IAMAuthorizer()` so API Gateway rejects unsigned calls before the
Lambda runs; the handler still refuses events that carry no IAM caller, in case a route is
ever deployed without the authorizer.
`/openapi.json` is protected like every other route (it documents internals of the stage).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any

from ..errors import UnauthorizedError


def route_authorizer(env: Mapping[str, str] | None = None) -> Any:
    """The Chalice authorizer for every route, decided from the stage's environment at import
    (Chalice loads app.py with the stage's environment variables when it packages/deploys)."""
    env = os.environ if env is None else env
    if any(k for k in env.get("API_KEYS", "").split(",")):
        return None
    from chalice import IAMAuthorizer

    return IAMAuthorizer()


def check(api_keys: frozenset[str], headers: Mapping[str, str], context: Mapping[str, Any]) -> None:
    if api_keys:
        given = headers.get("x-api-key", "")
        # Compare against every key (no early exit) so timing says nothing about which matched.
        ok = False
        for key in api_keys:
            ok |= hmac.compare_digest(given.encode(), key.encode())
        if not given:
            raise UnauthorizedError("missing x-api-key header")
        if not ok:
            raise UnauthorizedError("invalid API key")
        return
    identity = context.get("identity") or {}
    if not (identity.get("userArn") or identity.get("caller")):
        raise UnauthorizedError("this stage requires IAM (SigV4-signed) requests")
