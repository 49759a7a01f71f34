"""Ingest upload URLs and playback URLs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from control_harness import LOCAL_ENV, Api

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_given_a_range_when_ingest_urls_requested_then_one_scoped_expiring_put_url_per_seq(api: Api) -> None:
    api.create("news")
    resp = api.call("POST", "/channels/news/ingest-urls", {"first_seq": 7, "count": 3})
    assert resp.status_code == 200
    urls = resp.json_body["urls"]
    assert [u["key"] for u in urls] == ["news/00000007.ts", "news/00000008.ts", "news/00000009.ts"]
    for u in urls:
        parts = urlsplit(u["url"])
        assert parts.path.endswith(u["key"])
        assert LOCAL_ENV["INGEST_BUCKET"] in parts.netloc + parts.path
        qs = parse_qs(parts.query)
        assert qs["X-Amz-Expires"] == ["3600"]
        assert "X-Amz-Signature" in qs
        assert u["method"] == "PUT"


def test_given_a_presigned_url_when_the_encoder_puts_then_the_chunk_lands_at_exactly_that_key(api: Api) -> None:
    import requests  # moto's in-process mock intercepts requests to AWS endpoints too

    api.create("news")
    [u] = api.call("POST", "/channels/news/ingest-urls", {"first_seq": 1, "extension": "mp4"}).json_body["urls"]
    assert requests.put(u["url"], data=b"chunk", timeout=5).status_code == 200
    listed = boto3.client("s3").list_objects_v2(Bucket=LOCAL_ENV["INGEST_BUCKET"])["Contents"]
    assert [o["Key"] for o in listed] == ["news/00000001.mp4"]
    # Each URL is signed for its own key: the signature changes with the key.
    two = api.call("POST", "/channels/news/ingest-urls", {"first_seq": 1, "count": 2}).json_body["urls"]
    sigs = {parse_qs(urlsplit(x["url"]).query)["X-Amz-Signature"][0] for x in two}
    assert len(sigs) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [({"count": 0}, "count"), ({"count": 1001}, "count"), ({"first_seq": -1}, "first_seq"),
     ({"extension": "exe"}, "extension"), ({"count": "5"}, "count"), ({"bucket": "other"}, "bucket")],
)
def test_given_bad_ingest_requests_then_400(api: Api, body: dict[str, object], field: str) -> None:
    api.create("news")
    resp = api.call("POST", "/channels/news/ingest-urls", body)
    assert resp.status_code == 400 and field in resp.json_body["message"]


def test_given_a_channel_when_playback_requested_then_hls_dash_and_dvr_urls(api: Api) -> None:
    api.create("news")
    body = api.call("GET", "/channels/news/playback").json_body
    assert body == {
        "channel_id": "news",
        "signed": False,
        "hls": "https://cdn.example.test/news/master.m3u8",
        "dash": "https://cdn.example.test/news/manifest.mpd",
        "dvr": "https://cdn.example.test/news/dvr.m3u8",
    }


def _signing_key() -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key.public_key(), pem


def _cf_b64decode(value: str) -> bytes:
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"))


@pytest.fixture
def signing(api: Api) -> Any:
    from chalicelib.control.adapters import CloudFrontPolicySigner

    public, pem = _signing_key()
    api.ctl.signer = CloudFrontPolicySigner("K2TESTKEYPAIR", pem)
    api.create("news")
    return public


def _assert_cloudfront_signature(public: Any, policy: str, signature: str) -> dict[str, Any]:
    """What CloudFront checks: RSA-SHA1 (PKCS#1 v1.5) over the exact policy bytes it decodes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    raw = _cf_b64decode(policy)
    public.verify(_cf_b64decode(signature), raw, padding.PKCS1v15(), hashes.SHA1())
    return dict(json.loads(raw))


def test_given_a_signing_stage_when_a_browser_asks_then_channel_wide_signed_cookies_are_set(
    api: Api, signing: Any
) -> None:
    resp = api.call("GET", "/channels/news/playback")
    assert resp.status_code == 200
    body = resp.json_body
    assert body["signed"] is True and body["mode"] == "cookie"
    # The manifest URLs stay plain: the cookies carry the grant for every object under the channel.
    assert body["hls"] == "https://cdn.example.test/news/master.m3u8"
    cookies = body["cookies"]
    assert set(cookies) == {"CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id"}
    assert cookies["CloudFront-Key-Pair-Id"] == "K2TESTKEYPAIR"
    policy = _assert_cloudfront_signature(signing, cookies["CloudFront-Policy"], cookies["CloudFront-Signature"])
    [statement] = policy["Statement"]
    assert statement["Resource"] == "https://cdn.example.test/news/*" == body["resource"]
    expires = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
    assert expires == int(api.clock().timestamp()) + 3600
    assert body["expires_at"].startswith(datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    # Set-Cookie scoped to the channel's path, not readable by scripts, sent cross-site over https.
    set_cookie = resp.headers["Set-Cookie"]
    values = set_cookie if isinstance(set_cookie, list) else [set_cookie]
    assert len(values) == 3
    for name, value in cookies.items():
        [line] = [v for v in values if v.startswith(f"{name}={value};")]
        attrs = {a.strip().split("=")[0] for a in line.split(";")[1:]}
        assert {"Path", "Expires", "HttpOnly", "Secure", "SameSite"} <= attrs
        assert "; Path=/news/;" in line and "SameSite=None" in line
    assert resp.headers["Cache-Control"] == "no-store"
    assert "set_cookie" not in body


def test_given_a_signing_stage_when_query_mode_is_asked_then_every_url_carries_one_wildcard_signature(
    api: Api, signing: Any
) -> None:
    resp = api.call("GET", "/channels/news/playback?mode=query")
    assert resp.status_code == 200
    body = resp.json_body
    assert body["mode"] == "query" and "cookies" not in body and "Set-Cookie" not in resp.headers
    query = parse_qs(body["query"])
    assert set(query) == {"Policy", "Signature", "Key-Pair-Id"}
    for name in ("hls", "dash", "dvr"):
        parts = urlsplit(body[name])
        assert parse_qs(parts.query) == query, name  # one grant, not one canned policy per URL
    assert urlsplit(body["dash"]).path == "/news/manifest.mpd"
    policy = _assert_cloudfront_signature(signing, query["Policy"][0], query["Signature"][0])
    assert policy["Statement"][0]["Resource"] == "https://cdn.example.test/news/*"


def test_given_an_unknown_playback_mode_then_400_says_which_parameter(api: Api, signing: Any) -> None:
    resp = api.call("GET", "/channels/news/playback?mode=url")
    assert resp.status_code == 400
    assert "mode" in resp.json_body["message"] and "cookie" in resp.json_body["message"]
