"""A small HTTP client for the control API (stdlib only, so the CLI installs anywhere)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

# (method, url, headers, body) -> (status, response body)
Transport = Callable[[str, str, dict[str, str], bytes], tuple[int, bytes]]


class CliError(Exception):
    """Something the operator must see: the API's own message, or why it could not be reached."""


def urllib_transport(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())
    except urllib.error.URLError as e:
        raise CliError(f"cannot reach {url}: {e.reason}") from None


class ApiClient:
    def __init__(
        self, base_url: str, api_key: str = "", *, region: str = "", transport: Transport = urllib_transport
    ) -> None:
        if not base_url:
            raise CliError("no API endpoint: pass --endpoint or set SLIPSTREAM_API_URL")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.region = region
        self._transport = transport

    def request(self, method: str, path: str, body: Any = None) -> Any:
        url = self.base_url + path
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        else:
            headers = self._sigv4(method, url, headers, data)
        status, raw = self._transport(method, url, headers, data)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if status >= 400:
            if isinstance(payload, dict) and "message" in payload:
                raise CliError(f"{status} {payload.get('error', 'Error')}: {payload['message']}")
            if isinstance(payload, dict) and "Message" in payload:  # API Gateway's own errors
                raise CliError(f"{status}: {payload['Message']}")
            raise CliError(f"{status}: {raw[:200].decode('utf-8', 'replace')}")
        return payload

    def _sigv4(self, method: str, url: str, headers: dict[str, str], data: bytes) -> dict[str, str]:
        """IAM stages: sign like API Gateway expects (service execute-api)."""
        try:
            import botocore.session
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
        except ImportError:
            raise CliError("no API key given, and IAM signing needs botocore: pip install 'slipstream[aws]'") from None
        session = botocore.session.get_session()
        creds = session.get_credentials()
        if creds is None:
            raise CliError("no API key and no AWS credentials: pass --api-key or configure AWS credentials")
        region = self.region or session.get_config_variable("region") or "us-east-1"
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(creds, "execute-api", region).add_auth(req)
        return dict(req.headers.items())
