"""Issue #11 through the API: early return (`POST .../return`, the CLI's `return`), the channel's ad-marker
dialects and DASH options, and the 400/409 answers for bad requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from control_harness import API_KEY, Api

from chalicelib.control.adbreaks import to_timeline_breaks
from chalicelib.records import iso

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_given_a_running_break_when_it_returns_early_then_200_and_its_in_point_is_now(api: Api) -> None:
    api.running("news")
    brk = api.call("POST", "/channels/news/ad-breaks", {"duration": 30}).json_body
    api.clock.advance(7.5)
    resp = api.call("POST", f"/channels/news/ad-breaks/{brk['id']}/return")
    assert resp.status_code == 200, resp.body
    body = resp.json_body
    assert (body["state"], body["phase"], body["returned_at"]) == ("returned", "ended", iso(api.clock.now))
    assert body["republished"] is True and api.recorder.republished[-1] == ("news", f"ad break {brk['id']} returned")
    [timeline_break] = to_timeline_breaks(api.ctl.store.list_breaks("news"))
    assert timeline_break.returned_at == api.clock.now and timeline_break.duration == 30.0


@pytest.mark.parametrize(("when", "state", "phase"), [
    ("pending", "scheduled", "pending"), ("ended", "scheduled", "ended"), ("cancelled", "cancelled", "cancelled"),
    ("returned", "returned", "ended")])
def test_given_a_break_that_is_not_running_then_return_is_409_naming_its_state(
        api: Api, when: str, state: str, phase: str) -> None:
    api.running("news")
    start = api.clock.now + timedelta(minutes=5) if when in ("pending", "cancelled") else api.clock.now
    brk = api.call("POST", "/channels/news/ad-breaks", {"duration": 30, "start": iso(start)}).json_body
    if when == "cancelled":
        assert api.call("DELETE", f"/channels/news/ad-breaks/{brk['id']}").status_code == 200
    if when == "ended":
        api.clock.advance(31)
    if when == "returned":
        api.clock.advance(5)
        assert api.call("POST", f"/channels/news/ad-breaks/{brk['id']}/return").status_code == 200
    resp = api.call("POST", f"/channels/news/ad-breaks/{brk['id']}/return")
    assert resp.status_code == 409
    body = resp.json_body
    assert (body["error"], body["state"], body["phase"], body["id"]) == ("BreakStateError", state, phase, brk["id"])
    assert f"is not running: it is {state} ({phase})" in body["message"]


def test_return_for_an_unknown_break_is_404(api: Api) -> None:
    api.running("news")
    assert api.call("POST", "/channels/news/ad-breaks/nope/return").status_code == 404


def test_a_channel_takes_one_or_more_dialects_and_lists_what_they_mean(api: Api) -> None:
    created = api.create("news", marker_style="elemental,daterange")
    assert created["marker_style"] == "elemental,daterange"
    assert created["marker_dialects"] == ["elemental", "daterange"]
    legacy = api.create("sport", marker_style="both")
    assert legacy["marker_style"] == "both" and legacy["marker_dialects"] == ["scte35_enhanced", "daterange"]
    changed = api.call("PATCH", "/channels/sport", {"marker_style": ["scte35_enhanced"], "dash_ad_markers": "xml",
                                                    "dash_period_triggers": "avails",
                                                    "scte_filter": ["SPLICE_INSERT", "PROVIDER_ADVERTISEMENT"]})
    assert changed.status_code == 200, changed.body
    body = changed.json_body
    assert (body["marker_style"], body["dash_ad_markers"], body["dash_period_triggers"], body["scte_filter"]) == (
        "scte35_enhanced", "xml", "avails", ["SPLICE_INSERT", "PROVIDER_ADVERTISEMENT"])


@pytest.mark.parametrize(("body", "says"), [
    ({"marker_style": "adobe"}, "unknown ad marker dialect 'adobe'; use one or more of daterange, elemental, "
                                "scte35_enhanced, interstitials"),
    ({"marker_style": "elemental,scte35_enhanced"}, "both write EXT-X-CUE-OUT"),
    ({"marker_style": "interstitials"}, "interstitials needs the ad to play: set 'ad_asset_uri'"),
    ({"dash_ad_markers": "json"}, "dash_ad_markers"),
    ({"dash_period_triggers": "always"}, "dash_period_triggers"),
    ({"scte_filter": ["ADS"]}, "unknown scte_filter value(s) ['ADS']; allowed: SPLICE_INSERT, BREAK"),
    ({"ad_asset_uri": 'https://x/a".m3u8'}, "ad_asset_uri"),
])
def test_bad_marker_settings_are_400_naming_what_is_allowed(api: Api, body: dict[str, object], says: str) -> None:
    api.create("news")
    resp = api.call("PATCH", "/channels/news", body)
    assert resp.status_code == 400, resp.body
    assert says in resp.json_body["message"]
    assert api.call("POST", "/channels", {"id": "other", **body}).status_code == 400


def test_interstitials_with_an_asset_are_accepted(api: Api) -> None:
    api.create("news")
    resp = api.call("PATCH", "/channels/news", {"marker_style": "interstitials,daterange",
                                                "ad_asset_uri": "https://ads.example.com/a/index.m3u8"})
    assert resp.status_code == 200, resp.body
    assert resp.json_body["ad_asset_uri"] == "https://ads.example.com/a/index.m3u8"


def test_the_openapi_document_lists_the_return_route(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json_body
    op = doc["paths"]["/channels/{channel_id}/ad-breaks/{break_id}/return"]["post"]
    assert "409" in op["responses"] and {p["name"] for p in op["parameters"]} == {"channel_id", "break_id"}


def test_the_cli_returns_a_running_break_and_shows_the_409_of_one_that_is_not(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    from slipstream_cli.__main__ import main

    base = "https://api.example.test/api"

    def transport(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        resp = api.client.http.request(method, url[len(base):] or "/", headers=headers, body=body)
        return resp.status_code, resp.body

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(["--endpoint", base, "--api-key", API_KEY, *argv], transport=transport)
        out = capsys.readouterr()
        return code, out.out, out.err

    api.running("news")
    assert cli("create", "sport", "--marker-style", "elemental,daterange", "--dash-period-triggers", "avails")[0] == 0
    assert cli("ad-break", "news", "30", "--id", "promo")[0] == 0
    api.clock.advance(4)
    code, out, _ = cli("return", "news", "promo")
    assert code == 0 and out.startswith(f"ad break promo: returned at {iso(api.clock.now)}; CUE-IN at the next")
    code, out, err = cli("return", "news", "promo")
    assert code == 1 and "is not running: it is returned (ended)" in err
