"""bench.channels' accounting on small inputs: what counts as listed, late, whose CPU, which request."""

from __future__ import annotations

import math

from bench.channels import (
    CLK_TCK,
    Listings,
    ProcTimes,
    cpu_split,
    hls_upto,
    latency_summary,
    mpd_upto,
    parse_stat,
    per_chunk,
    queued_delta,
    request_delta,
)

LIVE = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.0,\n00000003.m4s\n#EXT-X-GAP\n#EXTINF:2.0,\n00000004.m4s\n"
MPD = ('<MPD><Period id="p0"><AdaptationSet><SegmentTemplate startNumber="0"><SegmentTimeline>'
       '<S t="0" d="180000" r="2"/><S d="176400"/></SegmentTimeline></SegmentTemplate></AdaptationSet></Period></MPD>')


def test_a_media_playlist_lists_up_to_its_last_segment_gap_or_not() -> None:
    assert hls_upto(LIVE) == 5
    assert hls_upto("#EXTM3U\n#EXT-X-TARGETDURATION:2\n") == 0
    assert hls_upto("#EXTM3U\n#EXTINF:2,\nr1/00000007.m4s?x=1\n") == 8


def test_the_mpd_lists_start_number_plus_its_timeline_entries_of_the_last_period() -> None:
    assert mpd_upto(MPD) == 4  # S r=2 is three segments, then one more
    two = MPD.replace("</Period></MPD>", '</Period><Period id="p1"><AdaptationSet><SegmentTemplate '
                      'startNumber="10"><SegmentTimeline><S t="0" d="1"/></SegmentTimeline></SegmentTemplate>'
                      "</AdaptationSet></Period></MPD>")
    assert mpd_upto(two) == 11
    assert mpd_upto("<MPD/>") == 0


def test_a_seq_is_listed_when_the_last_of_its_playlists_lists_it() -> None:
    lst = Listings(["ch"], ["360p", "audio"])
    lst.feed([{"time": 10.0, "key": "ch/360p/live.m3u8", "text": LIVE},
              {"time": 10.1, "key": "ch/360p/00000004.m4s"},  # media: no text, ignored
              {"time": 10.2, "key": "other/360p/live.m3u8", "text": LIVE},  # another channel
              {"time": 10.3, "key": "ch/manifest.mpd", "text": MPD}])
    assert lst.listed_at["ch"] == {}  # the audio playlist has not listed anything yet
    lst.feed([{"time": 11.0, "key": "ch/audio/live.m3u8", "text": LIVE}])
    assert lst.listed_at["ch"] == dict.fromkeys(range(4), 11.0)  # the MPD holds it at 4
    lst.feed([{"time": 12.0, "key": "ch/manifest.mpd", "text": MPD.replace('r="2"', 'r="3"')}])
    assert lst.listed_at["ch"][4] == 12.0 and lst.listed_at["ch"][0] == 11.0  # first listing wins


def test_late_and_missing_chunks_count_against_the_share_and_the_first_chunk_is_apart() -> None:
    uploaded = {("a", 0): 0.0, ("a", 1): 2.0, ("a", 2): 4.0, ("a", 3): 6.0, ("b", 1): 3.0}
    listed = {"a": {0: 5.0, 1: 2.5, 2: 7.0}, "b": {1: 3.9}}
    s = latency_summary(uploaded, listed, segment_time=2.0)
    assert s["missing"] == 1 and s["chunks"] == 5
    assert s["within_chunk"] == 2 / 4  # a1 (0.5 s) and b1 (0.9 s); a2 is 3 s late, a3 never listed
    assert math.isclose(s["p50_s"], 0.9) and math.isinf(s["p95_s"]) and s["first_chunk_max_s"] == 5.0


def test_cpu_goes_to_the_server_the_sandboxes_and_their_children_once_each() -> None:
    before = {
        1: ProcTimes(1, 0, "emulator", 10.0, 3.0),
        2: ProcTimes(2, 1, "sandbox", 5.0, 1.0),
        3: ProcTimes(3, 2, "child", 0.4, 0.0),  # ffmpeg running at the start, reaped during the run
    }
    seen = {
        1: ProcTimes(1, 0, "emulator", 14.0, 9.0),  # its children's time (reaped sandboxes) is not its own
        2: ProcTimes(2, 1, "sandbox", 6.0, 3.0),  # +2 s reaped ffmpeg, 0.4 s of which before the start
        3: ProcTimes(3, 2, "child", 0.9, 0.0),
        4: ProcTimes(4, 1, "sandbox", 1.5, 0.5),  # started and died during the run: its last sample
        5: ProcTimes(5, 4, "child", 0.2, 0.0),  # ffmpeg still running at the end
    }
    split = cpu_split(before, seen, alive_at_end=[1, 2, 5])
    assert split == {"emulator": 4.0, "lambda_python": 2.5, "ffmpeg": 2.0 - 0.4 + 0.5 + 0.2}


def test_a_proc_stat_line_gives_own_and_reaped_children_cpu() -> None:
    line = "42 (ffmpeg (x)) S 7 42 42 0 -1 4194304 1 0 0 0 250 50 30 20 20 0 1 0 100 0 0"
    name, ppid, own, children = parse_stat(line)
    assert (name, ppid) == ("ffmpeg (x)", 7)
    assert (own, children) == (300 / CLK_TCK, 50 / CLK_TCK)


def test_requests_per_chunk_are_the_pipelines_own_between_two_reads() -> None:
    def row(caller: str, service: str, op: str, count: int, errors: int, cpu: float) -> dict[str, object]:
        return {"caller": caller, "service": service, "operation": op, "count": count, "errors": errors, "cpu_s": cpu}

    before = [row("ingest", "s3", "PutObject", 4, 0, 0.004), row("xcode", "s3", "PutObject", 6, 0, 0.006),
              row("bench", "s3", "PutObject", 3, 0, 0.0)]
    after = [row("ingest", "s3", "PutObject", 4, 0, 0.004), row("xcode", "s3", "PutObject", 26, 1, 0.046),
             row("xcode", "dynamodb", "GetItem", 4, 0, 0.008), row("ingest", "lambda", "Invoke", 2, 0, 0.0),
             row("bench", "s3", "PutObject", 13, 0, 0.0)]
    delta = request_delta(before, after, ["ingest", "xcode"])
    assert set(delta) == {("s3", "PutObject"), ("dynamodb", "GetItem"), ("lambda", "Invoke")}
    table = per_chunk(delta, chunks=4)
    assert list(table) == ["s3", "dynamodb", "lambda"]
    assert table["s3"]["per_chunk"] == 5.0 and table["s3"]["operations"]["PutObject"]["errors"] == 1
    assert round(table["s3"]["operations"]["PutObject"]["cpu_ms_each"], 6) == 2.0
    assert table["dynamodb"]["per_chunk"] == 1.0
    assert request_delta(before, after, ["ingest"]) == {("lambda", "Invoke"): {"count": 2, "errors": 0, "cpu_s": 0.0}}


def test_queueing_over_the_run_is_the_difference_of_two_reads_per_source_kind() -> None:
    before = {"async": {"jobs": 2, "queued_seconds": 1.0, "max_queued_seconds": 0.5}}
    after = {"async": {"jobs": 6, "queued_seconds": 1.4, "max_queued_seconds": 0.5},
             "sqs": {"jobs": 2, "queued_seconds": 0.3, "max_queued_seconds": 0.2}}
    got = queued_delta(before, after)
    assert got["async"]["jobs"] == 4 and math.isclose(got["async"]["avg_ms"], 100.0)
    assert got["sqs"] == {"jobs": 2, "avg_ms": 150.0, "max_s": 0.2}
    assert queued_delta(after, after) == {}
