"""CloudFront invalidations: manifests only, one in flight per channel, within the limits."""

from __future__ import annotations

from chalicelib.pipeline.cdn import MAX_PATHS, bounded, decide, manifest_paths, paths_for


def test_an_ad_break_change_invalidates_only_the_manifests() -> None:
    paths = paths_for("adbreak", "news", ("360p", "audio"))
    assert sorted(paths) == sorted([
        "/news/master.m3u8", "/news/dvr.m3u8", "/news/manifest.mpd",
        "/news/360p/live.m3u8", "/news/360p/dvr.m3u8", "/news/audio/live.m3u8", "/news/audio/dvr.m3u8",
    ])
    assert not any(p.endswith(".m4s") or "*" in p for p in paths)


def test_a_reset_invalidates_the_whole_channel_with_one_wildcard() -> None:
    assert paths_for("reset", "news", ("360p",)) == ["/news/*"]


def test_while_one_is_in_flight_new_paths_are_parked_then_sent_together() -> None:
    a = manifest_paths("a", ("360p",))
    parked = decide(a, [], in_flight=True)
    assert parked.send == [] and sorted(parked.park) == sorted(a)
    # two more requests while in flight collapse into the same pending set
    again = decide(a, parked.park, in_flight=True)
    assert sorted(again.park) == sorted(a)
    sent = decide([], again.park, in_flight=False)
    assert sorted(sent.send) == sorted(a) and sent.park == []


def test_more_paths_than_cloudfront_accepts_collapse_to_channel_wildcards() -> None:
    many = [f"/c{i % 3}/x{i}.m3u8" for i in range(MAX_PATHS + 10)]
    assert bounded(many) == ["/c0/*", "/c1/*", "/c2/*"]
    assert len(bounded(manifest_paths("a", ("r1", "r2")))) == 7
