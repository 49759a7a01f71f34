"""The `low_latency` channel option through the HTTP API: created, shown, validated, locked while live,
the `ll_hls` playback URL, and presigned URLs for parts."""

from __future__ import annotations

import pytest
from control_harness import Api

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_a_low_latency_channel_shows_its_part_duration_and_gets_an_ll_hls_url(api: Api) -> None:
    body = api.create("fast", low_latency={"part_duration": 0.5})
    assert body["low_latency"] == {"part_duration": 0.5}
    assert api.call("GET", "/channels/fast").json_body["low_latency"] == {"part_duration": 0.5}
    playback = api.call("GET", "/channels/fast/playback").json_body
    assert playback["ll_hls"] == "https://cdn.example.test/fast/ll.m3u8"
    assert playback["hls"] == "https://cdn.example.test/fast/master.m3u8"  # regular players keep theirs
    plain = api.create("plain")
    assert plain["low_latency"] is None and "ll_hls" not in api.call("GET", "/channels/plain/playback").json_body


@pytest.mark.parametrize(("low_latency", "message"), [
    ({"part_duration": 0.3}, "must divide the 2 s segments into 2 to 10 equal parts"),
    ({"part_duration": 0.1}, "use at least 0.2 s"),
    ({"part_duration": 3.0}, "less than or equal to 2"),
    ({"part_duration": "0.5"}, "part_duration"),
    ({"parts": 4}, "parts"),
])
def test_a_part_duration_that_does_not_divide_the_segment_is_refused(api: Api, low_latency: object,
                                                                      message: str) -> None:
    resp = api.call("POST", "/channels", {"id": "fast", "low_latency": low_latency})
    assert resp.status_code == 400 and message in resp.json_body["message"], resp.json_body


def test_low_latency_changes_only_while_the_channel_is_not_live(api: Api) -> None:
    api.create("fast")
    resp = api.call("PATCH", "/channels/fast", {"low_latency": {"part_duration": 0.5}})
    assert resp.status_code == 200 and resp.json_body["low_latency"] == {"part_duration": 0.5}
    off = api.call("PATCH", "/channels/fast", {"low_latency": {"part_duration": 0}})
    assert off.status_code == 200 and off.json_body["low_latency"] is None
    api.call("PATCH", "/channels/fast", {"low_latency": {"part_duration": 0.5}})
    api.running("live")
    locked = api.call("PATCH", "/channels/live", {"low_latency": {"part_duration": 0.5}})
    assert locked.status_code == 409


def test_ingest_urls_for_parts_name_every_part_of_every_segment(api: Api) -> None:
    api.create("fast", low_latency={"part_duration": 0.5})
    urls = api.call("POST", "/channels/fast/ingest-urls", {"first_seq": 3, "count": 2, "parts": 4}).json_body["urls"]
    assert [(u["seq"], u["part"], u["key"]) for u in urls] == [
        (s, p, f"fast/{s:08d}.{p}.ts") for s in (3, 4) for p in range(4)]
    too_many = api.call("POST", "/channels/fast/ingest-urls", {"count": 300, "parts": 4})
    assert too_many.status_code == 400 and "more than 1000 URLs" in too_many.json_body["message"]
