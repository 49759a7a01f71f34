"""The CLI's HTTP client: API-key header, SigV4 signing for IAM stages, error wording."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slipstream_cli.client import ApiClient, CliError

ROOT = Path(__file__).resolve().parents[3]


def test_given_no_api_key_then_requests_are_sigv4_signed_for_execute_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    seen: dict[str, str] = {}

    def transport(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        seen.update(headers)
        return 200, b'{"channels": []}'

    api = ApiClient("https://abc.execute-api.eu-west-1.amazonaws.com/api", region="eu-west-1", transport=transport)
    assert api.request("GET", "/channels") == {"channels": []}
    assert seen["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in seen["Authorization"]
    assert "x-api-key" not in seen


def test_given_an_api_key_then_it_is_sent_and_nothing_is_signed() -> None:
    seen: dict[str, str] = {}

    def transport(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        seen.update(headers)
        return 201, json.dumps({"id": "x"}).encode()

    ApiClient("http://api", "k", transport=transport).request("POST", "/channels", {"id": "x"})
    assert seen["x-api-key"] == "k" and "Authorization" not in seen


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [(409, b'{"error": "StateTransitionError", "message": "channel \'a\' is RUNNING"}',
      "409 StateTransitionError: channel 'a' is RUNNING"),
     (403, b'{"Message": "User is not authorized"}', "403: User is not authorized"),
     (502, b"<html>bad gateway</html>", "502: <html>bad gateway</html>")],
)
def test_api_errors_become_one_readable_line(status: int, body: bytes, shown: str) -> None:
    api = ApiClient("http://api", "k", transport=lambda *a: (status, body))
    with pytest.raises(CliError) as e:
        api.request("GET", "/channels")
    assert str(e.value) == shown


def test_python_dash_m_runs_and_lists_the_operator_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "slipstream_cli", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    for command in ("create", "start", "stop", "ad-break", "status"):
        assert command in out
