"""devtools.edge.TrustedKeys: the demo origin accepts exactly what the API signs, like CloudFront does."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from chalicelib.control.adapters import CloudFrontPolicySigner
from chalicelib.control.ports import PlaybackGrant
from devtools.demo import signing_key_pair
from devtools.edge import TrustedKeys

BASE = "http://127.0.0.1:8080/origin"


@pytest.fixture(scope="module")
def keys() -> tuple[CloudFrontPolicySigner, TrustedKeys, CloudFrontPolicySigner]:
    private, public = signing_key_pair()
    other_private, _ = signing_key_pair()
    return (CloudFrontPolicySigner("K1", private), TrustedKeys({"K1": public}),
            CloudFrontPolicySigner("K1", other_private))


def _grant(signer: CloudFrontPolicySigner, resource: str = f"{BASE}/news/*", ttl: float = 600) -> PlaybackGrant:
    return signer.grant(resource, datetime.now(UTC) + timedelta(seconds=ttl))


CMCD = quote('br=800,ot=a,sid="x"')
# Whatever the packager names its objects (run-scoped segments, several periods), one grant covers them.
CHANNEL_URLS = [f"{BASE}/news/master.m3u8", f"{BASE}/news/720p/live.m3u8", f"{BASE}/news/manifest.mpd",
                f"{BASE}/news/720p/init.mp4", f"{BASE}/news/720p/r2/00000042.m4s",
                f"{BASE}/news/audio/00000042.m4s?CMCD={CMCD}"]


@pytest.mark.parametrize("url", CHANNEL_URLS)
def test_given_a_channel_grant_then_every_object_of_the_channel_is_allowed_by_cookie_and_by_query(
    keys: tuple[CloudFrontPolicySigner, TrustedKeys, CloudFrontPolicySigner], url: str
) -> None:
    signer, edge, _ = keys
    grant = _grant(signer)
    by_cookie = edge.authorize(url, grant.cookies())
    assert (by_cookie.allowed, by_cookie.carrier) == (True, "cookie")
    sep = "&" if "?" in url else "?"
    by_query = edge.authorize(f"{url}{sep}{grant.query()}", {})
    assert (by_query.allowed, by_query.carrier) == (True, "query")


def test_without_a_signature_the_edge_refuses_with_cloudfronts_reason(
    keys: tuple[CloudFrontPolicySigner, TrustedKeys, CloudFrontPolicySigner],
) -> None:
    _, edge, _ = keys
    verdict = edge.authorize(f"{BASE}/news/720p/00000042.m4s", {})
    assert not verdict.allowed
    assert verdict.reason == "Missing Key-Pair-Id query parameter or cookie value"


@pytest.mark.parametrize(("case", "reason"), [
    ("other channel", "Access denied"),
    ("expired", "Access denied"),
    ("not our key", "Access denied"),
    ("unknown key id", "Unknown Key"),
    ("tampered policy", "Access denied"),
])
def test_a_grant_never_opens_more_than_its_policy(
    keys: tuple[CloudFrontPolicySigner, TrustedKeys, CloudFrontPolicySigner], case: str, reason: str
) -> None:
    signer, edge, stranger = keys
    url = f"{BASE}/news/720p/00000042.m4s"
    cookies = _grant(signer).cookies()
    if case == "other channel":
        url = f"{BASE}/sports/720p/00000042.m4s"
    elif case == "expired":
        cookies = _grant(signer, ttl=-1).cookies()
    elif case == "not our key":
        cookies = _grant(stranger).cookies()
    elif case == "unknown key id":
        cookies = {**cookies, "CloudFront-Key-Pair-Id": "K9"}
    else:
        wider = _grant(signer, resource=f"{BASE}/*").cookies()
        cookies = {**cookies, "CloudFront-Policy": wider["CloudFront-Policy"]}  # the other policy's signature
        url = f"{BASE}/sports/x.m4s"
    verdict = edge.authorize(url, cookies)
    assert (verdict.allowed, verdict.reason) == (False, reason), case


def test_a_query_signature_wins_over_cookies_like_cloudfront(
    keys: tuple[CloudFrontPolicySigner, TrustedKeys, CloudFrontPolicySigner],
) -> None:
    signer, edge, stranger = keys
    good = _grant(signer)
    verdict = edge.authorize(f"{BASE}/news/a.m4s?{_grant(stranger).query()}", good.cookies())
    assert not verdict.allowed and verdict.carrier == "query"


def test_the_policy_is_checked_at_the_moment_of_the_request(
    keys: tuple[CloudFrontPolicySigner, TrustedKeys, CloudFrontPolicySigner],
) -> None:
    signer, edge, _ = keys
    grant = _grant(signer, ttl=60)
    url = f"{BASE}/news/a.m4s"
    assert edge.authorize(url, grant.cookies(), now=time.time() + 30).allowed
    assert not edge.authorize(url, grant.cookies(), now=time.time() + 61).allowed
