"""Ingest upload URLs and playback URLs."""

from __future__ import annotations

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


def test_given_a_stage_with_a_cloudfront_key_then_playback_urls_are_signed(api: Api) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from chalicelib.control.adapters import CloudFrontUrlSigner

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    api.ctl.signer = CloudFrontUrlSigner("K2TESTKEYPAIR", pem)
    api.create("news")
    body = api.call("GET", "/channels/news/playback").json_body
    assert body["signed"] is True and body["expires_at"]
    qs = parse_qs(urlsplit(body["hls"]).query)
    assert qs["Key-Pair-Id"] == ["K2TESTKEYPAIR"] and "Signature" in qs and "Expires" in qs
    assert urlsplit(body["hls"]).path == "/news/master.m3u8"
