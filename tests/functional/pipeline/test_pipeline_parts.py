"""Low-Latency HLS end to end on moto: parts in, parts and full segments out, LL playlists from the origin.

The encoder uploads 4 parts of 0.5 s per 2 s segment; each is transcoded as it arrives; the full segment
appears for regular players once its parts are there; the LL origin renders from the store, holds
blocking requests until the part exists, and answers bad input with 400/404, never a hang."""

from __future__ import annotations

import functools
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import m3u8
import pytest
from pipeline_harness import Pipeline

from chalicelib import records
from chalicelib.pipeline import llorigin, parts
from chalicelib.pipeline.llorigin import Request, Views
from chalicelib.transcode import boxes
from tests.support.fake_parts import FakePartTranscoder, part_body

CH = "fast"
K = 4  # parts per segment


@pytest.fixture
def ll(pipe: Pipeline) -> Pipeline:
    pipe.deps.transcode = FakePartTranscoder()
    pipe.channel(CH, part_duration=0.5)
    return pipe


def send(pipe: Pipeline, seq: int, index: int, *, advance: float = 0.5, process: bool = True,
         body: bytes | None = None) -> list[str]:
    """Part `index` of segment `seq` closes at the encoder and is uploaded (then transcoded and packaged)."""
    pipe.clock.advance(advance)
    out = pipe.ingest(pipe.upload(CH, seq, body=body if body is not None else part_body(seq, index),
                                  key=f"{CH}/{seq:08d}.{index}.ts"))
    if process:
        pipe.pump()
    return out


def segments(pipe: Pipeline, n: int, first: int = 0) -> None:
    for seq in range(first, first + n):
        for i in range(K):
            assert send(pipe, seq, i) == ["accepted"]


class Time:
    """A monotonic clock the origin's hold loop runs on; sleeping advances it and may make things happen."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.t = 1000.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.sleeps += 1
        self.t += dt
        if self.on_sleep is not None:
            self.on_sleep(self.sleeps)


def get(pipe: Pipeline, path: str, query: str = "", t: Time | None = None, views: Views | None = None
        ) -> llorigin.Response:
    t = t or Time()
    return llorigin.handle(Request.of(path, query), pipe.deps, views=views or Views(), sleep=t.sleep, clock=t)


def part_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("#EXT-X-PART:", "#EXTINF", "#EXT-X-PRELOAD"))
            or (line and not line.startswith("#"))]


# --------------------------------------------------------------------------- parts and full segments


def test_each_part_is_one_fragment_per_rendition_and_the_full_segment_is_the_parts_fragments(ll: Pipeline) -> None:
    segments(ll, 1)
    for r in ("360p", "240p", "audio"):
        frags = []
        for i in range(K):
            key = f"{CH}/{r}/r1/00000000.{i}.m4s"
            head = ll.head(key)
            assert head["CacheControl"] == "public, max-age=1209600, immutable"
            frags.append(boxes.fragments_info(ll.origin_bytes(key))[0])
        whole = boxes.fragments_info(ll.origin_bytes(f"{CH}/{r}/r1/00000000.m4s"))
        # The full segment is the parts' fragments, in order, with the tfdt each part was transcoded with.
        assert [(f.decode_time, f.duration) for f in whole] == [(f.decode_time, f.duration) for f in frags]
        for a, b in itertools.pairwise(whole):
            assert a.decode_time + a.duration == b.decode_time  # seamless: no gap, no overlap
    video = [boxes.fragments_info(ll.origin_bytes(f"{CH}/360p/r1/00000000.{i}.m4s"))[0] for i in range(K)]
    assert [f.samples for f in video] == [13, 12, 13, 12]  # 0.5 s parts on the 25 fps grid
    assert all(f.starts_with_sync for f in video)  # every part starts on an IDR (INDEPENDENT=YES)
    # Regular players: the segment is listed in live.m3u8, dvr.m3u8 and the MPD, once it is complete.
    assert ll.listed(CH) == ["r1/00000000.m4s"]
    assert "r1/$Number%08d$.m4s" in ll.origin(f"{CH}/manifest.mpd")


def test_a_segment_is_listed_for_regular_players_only_when_its_last_part_is_done(ll: Pipeline) -> None:
    segments(ll, 1)
    for i in range(K - 1):
        send(ll, 1, i)
    assert ll.listed(CH) == ["r1/00000000.m4s"]
    send(ll, 1, K - 1)
    assert ll.listed(CH) == ["r1/00000000.m4s", "r1/00000001.m4s"]


def test_parts_are_transcoded_on_arrival_whatever_the_parts_before_them_do(ll: Pipeline) -> None:
    """Out of order: part 2 arrives before part 1; it is transcoded at once, listed once part 1 is."""
    segments(ll, 1)
    send(ll, 1, 0)
    send(ll, 1, 2)
    assert ll.head(f"{CH}/360p/r1/00000001.2.m4s")  # transcoded on arrival
    text = get(ll, f"/{CH}/360p/ll.m3u8").text
    assert 'URI="r1/00000001.0.m4s"' in text and "00000001.2.m4s" not in text.split("PRELOAD-HINT")[0]
    send(ll, 1, 1, advance=0.1)
    text = get(ll, f"/{CH}/360p/ll.m3u8").text
    assert [ln.split('URI="')[1].split('"')[0] for ln in text.splitlines() if ln.startswith("#EXT-X-PART:")][-3:] == [
        "r1/00000001.0.m4s", "r1/00000001.1.m4s", "r1/00000001.2.m4s"]


# --------------------------------------------------------------------------- the LL playlist


def test_the_ll_playlist_lists_parts_of_the_newest_segments_with_server_control_hint_and_reports(ll: Pipeline) -> None:
    segments(ll, 5)
    send(ll, 5, 0)
    send(ll, 5, 1)
    resp = get(ll, f"/{CH}/360p/ll.m3u8")
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert resp.headers["Cache-Control"] == "public, max-age=1"
    text = resp.text
    assert "#EXT-X-VERSION:10" in text
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.689,CAN-SKIP-UNTIL=12.0," \
           "CAN-SKIP-DATERANGES=YES" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.563" in text
    lines = part_lines(text)
    # Segments 0 and 1 are more than three target durations from the end: no parts.
    assert lines[:4] == ["#EXTINF:2.000,", "r1/00000000.m4s", "#EXTINF:2.000,", "r1/00000001.m4s"]
    assert lines[-7:] == [
        '#EXT-X-PART:DURATION=0.52000,URI="r1/00000004.2.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.48000,URI="r1/00000004.3.m4s",INDEPENDENT=YES',
        "#EXTINF:2.000,", "r1/00000004.m4s",
        '#EXT-X-PART:DURATION=0.52000,URI="r1/00000005.0.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.48000,URI="r1/00000005.1.m4s",INDEPENDENT=YES',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1/00000005.2.m4s"', ]
    assert '#EXT-X-RENDITION-REPORT:URI="../240p/ll.m3u8",LAST-MSN=5,LAST-PART=1' in text
    assert '#EXT-X-RENDITION-REPORT:URI="../audio/ll.m3u8",LAST-MSN=5,LAST-PART=1' in text
    assert "../360p/ll.m3u8" not in text
    # The same segments, PDT and numbering as the regular live playlist (one renderer, one timeline).
    live = m3u8.loads(ll.origin(f"{CH}/360p/live.m3u8"))
    lowl = m3u8.loads(text)
    assert lowl.media_sequence == live.media_sequence
    assert [(s.uri, s.program_date_time) for s in lowl.segments if s.uri] == \
           [(s.uri, s.program_date_time) for s in live.segments]
    # The segment being written carries its PDT before its first part: where segment 4 ends.
    being_written = text.split("r1/00000004.m4s\n")[1]
    assert being_written.startswith("#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:10.000Z\n#EXT-X-PART:")


def test_the_audio_playlist_lists_the_audio_durations_of_its_parts(ll: Pipeline) -> None:
    segments(ll, 1)
    text = get(ll, f"/{CH}/audio/ll.m3u8").text
    durations = [float(ln.split("DURATION=")[1].split(",")[0]) for ln in text.splitlines()
                 if ln.startswith("#EXT-X-PART:")]
    assert len(durations) == 4 and all(0.47 < d <= 0.563 for d in durations)  # whole AAC frames, <= PART-TARGET
    assert abs(sum(durations) - float(text.split("#EXTINF:")[1].split(",")[0])) < 0.001


def test_the_ll_master_points_at_the_ll_media_playlists(ll: Pipeline) -> None:
    segments(ll, 1)
    resp = get(ll, f"/{CH}/ll.m3u8")
    master = m3u8.loads(resp.text)
    assert [p.uri for p in master.playlists] == ["360p/ll.m3u8", "240p/ll.m3u8"]
    assert master.media[0].uri == "audio/ll.m3u8"
    assert 'URI="360p/iframes.m3u8"' in resp.text  # trick play from the live I-frame playlists


def test_regular_playlists_dvr_and_dash_keep_working_on_a_low_latency_channel(ll: Pipeline) -> None:
    segments(ll, 3)
    assert ll.listed(CH, "360p") == ll.listed(CH, "audio") == [f"r1/{i:08d}.m4s" for i in range(3)]
    assert ll.listed(CH, "240p", "dvr") == [f"r1/{i:08d}.m4s" for i in range(3)]
    assert "EXT-X-PART" not in ll.origin(f"{CH}/360p/live.m3u8")
    iframes = ll.origin(f"{CH}/360p/iframes.m3u8")
    assert "#EXT-X-BYTERANGE:" in iframes and "#EXT-X-GAP" not in iframes  # each part's IDR is in the segment


# --------------------------------------------------------------------------- blocking reload


def test_a_blocking_request_is_held_until_its_part_exists_then_answered(ll: Pipeline) -> None:
    segments(ll, 2)
    send(ll, 2, 0)

    def arrive(n: int) -> None:
        if n == 5:
            send(ll, 2, 1, advance=0.1)

    t = Time(arrive)
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=2&_HLS_part=1", t)
    assert resp.status == 200
    assert t.sleeps == 5  # held while the part did not exist, answered at the first look after it did
    assert 'URI="r1/00000002.1.m4s"' in resp.text and 'PRELOAD-HINT:TYPE=PART,URI="r1/00000002.2.m4s"' in resp.text
    assert resp.headers["Cache-Control"] == "public, max-age=12"  # six target durations (RFC 8216bis App. B)
    # CMSD held time: how long the origin blocked (here: the fake clock's sleeps).
    assert int(resp.headers["CMSD-Static"].removeprefix("ht=")) == round((t.t - 1000.0) * 1000)


def test_a_request_for_the_part_after_a_segments_last_waits_for_the_next_segments_first(ll: Pipeline) -> None:
    segments(ll, 2)
    t = Time(lambda n: send(ll, 2, 0) if n == 2 else None)
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=1&_HLS_part=4", t)
    assert resp.status == 200 and t.sleeps == 2 and 'URI="r1/00000002.0.m4s"' in resp.text


def full_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The LL origin's full reads of a channel's state from now on (channel record, PUB, windows, breaks)."""
    reads: list[str] = []
    read = llorigin.read_inputs

    def counted(channel: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(channel)
        return read(channel, *args, **kwargs)

    monkeypatch.setattr(llorigin, "read_inputs", counted)
    return reads


def test_the_next_segments_first_part_is_answered_at_the_first_look_without_reading_the_channel_again(
        ll: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a held request for the first part of the next segment, when the last part of the segment
    before it and then the part arrive, then the part is answered at the first look after it exists, and
    the origin took the written segment from its SEG# item alone (no full read of the channel's state)."""
    segments(ll, 2)
    for i in range(K - 1):
        send(ll, 2, i)
    views = Views()
    t = Time()
    assert get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).status == 200
    reads = full_reads(monkeypatch)
    t.on_sleep = lambda n: send(ll, 2, K - 1) if n == 2 else send(ll, 3, 0) if n == 4 else None
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=3&_HLS_part=0", t, views)
    assert resp.status == 200 and t.sleeps == 4
    assert 'URI="r1/00000003.0.m4s"' in resp.text and "r1/00000002.m4s" in resp.text
    assert reads == []


class Later:
    """The LL origin's full reads, run when the test says so (`Views(read_later=...)`)."""

    def __init__(self) -> None:
        self.reads: list[Callable[[], None]] = []

    def __call__(self, read: Callable[[], None]) -> None:
        self.reads.append(read)

    def run(self) -> None:
        while self.reads:
            self.reads.pop(0)()


def test_a_due_full_read_waits_for_a_moment_no_part_is_expected_but_not_past_its_bound(
        ll: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    segments(ll, 2)
    send(ll, 2, 0)
    later = Later()
    views = Views(read_later=later)
    now = [1000.0]
    assert views.get(CH, ll.deps, llorigin.POLL, lambda: now[0]) is not None  # the first read: in the request
    reads = full_reads(monkeypatch)
    now[0] += llorigin.REFRESH + 0.01
    views.get(CH, ll.deps, llorigin.POLL, lambda: now[0])  # a part may be due: the parts only
    assert later.reads == []
    views.get(CH, ll.deps, llorigin.POLL, lambda: now[0], slack=1.0)  # nothing expected for 1 s: the full read
    assert len(later.reads) == 1 and reads == []  # started, not done in the request
    later.run()
    now[0] += llorigin.POLL
    view = views.get(CH, ll.deps, llorigin.POLL, lambda: now[0])  # the next look lays out its result
    assert reads == [CH] and view is not None and view.fetched == now[0] - llorigin.POLL
    now[0] += llorigin.REFRESH + llorigin.LATE_REFRESH + 0.01
    views.get(CH, ll.deps, llorigin.POLL, lambda: now[0])  # overdue: started whatever is expected
    assert len(later.reads) == 1
    views.get(CH, ll.deps, llorigin.POLL, lambda: now[0] + 0.5, slack=1.0)
    assert len(later.reads) == 1  # one at a time
    later.run()
    assert reads == [CH, CH]


def test_a_part_published_while_the_channels_state_is_read_again_is_answered_before_that_read_ends(
        ll: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a held request, when the full read of the channel's state (record, PUB, windows: several round
    trips) is due and slow, then the part published meanwhile is answered at the first look after it exists,
    while that read is still going on; and what the read found (here: a stop) is served once it ended."""
    segments(ll, 2)
    send(ll, 2, 0)
    threads: list[threading.Thread] = []

    def in_thread(read: Callable[[], None]) -> None:
        threads.append(threading.Thread(target=read, daemon=True))
        threads[-1].start()

    views = Views(read_later=in_thread)
    t = Time()
    assert get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).status == 200
    gate, started, ended = threading.Event(), threading.Event(), threading.Event()
    read = llorigin.read_inputs

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        gate.wait(timeout=3)
        try:
            return read(*args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(llorigin, "read_inputs", slow)
    t.t += llorigin.REFRESH + llorigin.LATE_REFRESH + 0.01  # a full read is due whatever is expected
    t.on_sleep = lambda n: send(ll, 2, 1) if n == 2 else None
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=2&_HLS_part=1", t, views)
    assert resp.status == 200 and 'URI="r1/00000002.1.m4s"' in resp.text and t.sleeps == 2
    assert started.is_set() and not ended.is_set()  # answered while the read was still going on
    ll.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                         ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPING})
    gate.set()
    threads[0].join(timeout=30)
    t.t += llorigin.POLL
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=2&_HLS_part=2", t, views)
    assert resp.status == 200 and resp.text.endswith("#EXT-X-ENDLIST\n")


def test_a_full_read_begun_before_a_segment_was_written_does_not_take_that_segment_back(
        ll: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full read may read the store just before the worker writes a segment whose SEG# a look then
    takes: when its result is used, the segment stays listed and so do the next segment's parts."""
    segments(ll, 2)
    for i in range(K - 1):
        send(ll, 2, i)
    later = Later()
    views = Views(read_later=later)
    t = Time()
    assert get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).status == 200
    before = llorigin.read_inputs(CH, ll.deps, None, t.t)  # what a read at this moment sees
    send(ll, 2, K - 1)
    send(ll, 3, 0)
    for _ in range(2):  # the look that lists the segment's last part, the one that takes its SEG#
        t.t += llorigin.POLL
        views.get(CH, ll.deps, llorigin.POLL, t)
    t.t += llorigin.POLL
    text = get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).text
    assert 'URI="r1/00000003.0.m4s"' in text and "r1/00000002.m4s" in text
    monkeypatch.setattr(llorigin, "read_inputs", lambda *args, **kwargs: before)
    t.t += llorigin.REFRESH + llorigin.LATE_REFRESH
    views.get(CH, ll.deps, llorigin.POLL, t)
    assert len(later.reads) == 1
    later.run()
    t.t += llorigin.POLL
    after = get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).text
    assert 'URI="r1/00000003.0.m4s"' in after and "r1/00000002.m4s" in after


def test_a_look_asks_only_for_the_parts_that_can_still_change_and_shows_what_a_full_read_shows(
        ll: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a view looked at after each part of five segments, then each look asks the store only for the
    parts from the first segment not yet written in full (those before it do not change: a look returns a
    few items, not three segments' worth), and every playlist it serves is the one a fresh full read of the
    channel's state gives at that moment (EXT-X-PARTs of the newest segments included)."""
    asked: list[tuple[int, int]] = []  # where the origin's PRT# queries start

    class Counted:
        def __init__(self, store: parts.PartStore) -> None:
            self.store = store

        def parts(self, channel: str, run: int, lo: tuple[int, int] = (0, 0), hi: tuple[int, int] | None = None
                  ) -> Any:
            asked.append(lo)
            return self.store.parts(channel, run, lo, hi)

    segments(ll, 2)
    views = Views(read_later=Later())  # no full read after the first: the looks alone
    t = Time()
    assert get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).status == 200
    monkeypatch.setattr(llorigin, "part_store", lambda deps: Counted(parts.part_store(deps)))
    for seq in range(2, 7):
        for i in range(K):
            send(ll, seq, i)
            for _ in range(2):  # the look that lists the part; at a segment's end, the one that takes its SEG#
                t.t += llorigin.POLL
                text = get(ll, f"/{CH}/360p/ll.m3u8", "", t, views).text
            assert f'URI="r1/{seq:08d}.{i}.m4s"' in text
            asked_before = len(asked)
            fresh = get(ll, f"/{CH}/360p/ll.m3u8", "", Time()).text  # a new Views: a full read
            del asked[asked_before:]
            assert text == fresh, (seq, i)
    # From the first segment not yet written (2, 3, ... 7), never from 3 segments before it.
    assert len(asked) == 5 * K * 2 and asked[-1] == (7, 0), asked
    assert all(lo[0] >= 2 + n // (K * 2) for n, lo in enumerate(asked)), asked


def test_a_request_for_a_listed_part_or_segment_is_answered_at_once(ll: Pipeline) -> None:
    segments(ll, 2)
    t = Time()
    for q in ("_HLS_msn=1&_HLS_part=3", "_HLS_msn=0", "_HLS_msn=1"):
        assert get(ll, f"/{CH}/240p/ll.m3u8", q, t).status == 200
    assert t.sleeps == 0


def test_a_request_nothing_answers_is_released_with_503_after_three_target_durations(ll: Pipeline) -> None:
    segments(ll, 1)
    t = Time()
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=1&_HLS_part=0", t)
    assert resp.status == 503 and "within 3 target durations (6 s)" in json.loads(resp.body)["message"]
    assert 6.0 <= t.t - 1000.0 < 6.0 + 2 * llorigin.POLL


@pytest.mark.parametrize(("query", "message"), [
    ("_HLS_part=1", "_HLS_part needs _HLS_msn"),
    ("_HLS_msn=-1", "_HLS_msn='-1' is not a non-negative decimal integer"),
    ("_HLS_msn=abc", "not a non-negative decimal integer"),
    ("_HLS_msn=1&_HLS_part=-2", "_HLS_part='-2' is not a non-negative decimal integer"),
    ("_HLS_msn=1.5", "not a non-negative decimal integer"),
    ("_HLS_msn=", "not a non-negative decimal integer"),
    ("_HLS_msn=99", "more than two segments beyond the last one"),
    ("_HLS_msn=1&_HLS_part=5", "beyond the last part index of a segment"),
    ("_HLS_msn=3&_HLS_part=2", "beyond the advance limit"),
    ("_HLS_msn=1&_HLS_msn=2", "appears more than once"),
    ("_HLS_skip=no", "_HLS_skip='no': use YES or v2"),
    ("_HLS_push=1", "unknown delivery directive"),
])
def test_bad_delivery_directives_get_400_with_the_reason_and_never_wait(ll: Pipeline, query: str, message: str) -> None:
    segments(ll, 1)
    send(ll, 1, 0)
    t = Time()
    resp = get(ll, f"/{CH}/360p/ll.m3u8", query, t)
    assert resp.status == 400, resp.text
    assert message in json.loads(resp.body)["message"]
    assert t.sleeps == 0 and resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("path", "message"), [
    ("/nosuch/360p/ll.m3u8", "channel 'nosuch' not found"),
    (f"/{CH}/1080p/ll.m3u8", "unknown rendition '1080p'"),
    (f"/{CH}/360p/r1/00000009.7.m4s", "is not published and is not the next part"),
    (f"/{CH}/360p/other.m3u8", "no such low-latency resource"),
    ("/../etc/passwd", "no such low-latency resource"),
    ("/Bad_Channel/ll.m3u8", "no such low-latency resource"),
])
def test_unknown_channels_renditions_and_paths_get_404(ll: Pipeline, path: str, message: str) -> None:
    segments(ll, 1)
    t = Time()
    resp = get(ll, path, "", t)
    assert resp.status == 404 and message in json.loads(resp.body)["message"]
    assert t.sleeps == 0


def test_a_channel_without_low_latency_has_no_ll_playlists_and_refuses_parts(pipe: Pipeline) -> None:
    pipe.channel("plain")
    resp = llorigin.handle(Request.of("/plain/360p/ll.m3u8"), pipe.deps, views=Views())
    assert resp.status == 404 and "has no low-latency playlists" in json.loads(resp.body)["message"]
    out = pipe.ingest(pipe.upload("plain", 0, body=part_body(0, 0), key="plain/00000000.0.ts"))
    assert out[0].startswith("rejected: the channel is not low-latency")


def test_only_get_is_allowed(ll: Pipeline) -> None:
    resp = llorigin.handle(Request.of(f"/{CH}/360p/ll.m3u8", method="POST"), ll.deps, views=Views())
    assert resp.status == 405


# --------------------------------------------------------------------------- preload hints


def test_a_request_for_the_hinted_part_waits_until_it_exists(ll: Pipeline) -> None:
    segments(ll, 1)
    send(ll, 1, 0)
    t = Time(lambda n: send(ll, 1, 1, advance=0.1) if n == 3 else None)
    resp = get(ll, f"/{CH}/360p/r1/00000001.1.m4s", "", t)
    assert resp.status == 200 and t.sleeps >= 3
    assert resp.body == ll.origin_bytes(f"{CH}/360p/r1/00000001.1.m4s")
    assert resp.headers["Cache-Control"] == "public, max-age=1209600, immutable"
    # A part that exists is served at once; one far ahead is a 404 at once.
    t2 = Time()
    assert get(ll, f"/{CH}/360p/r1/00000001.0.m4s", "", t2).status == 200
    assert get(ll, f"/{CH}/360p/r1/00000003.0.m4s", "", t2).status == 404 and t2.sleeps == 0


def test_a_hinted_part_that_never_comes_is_a_404_after_the_bound(ll: Pipeline) -> None:
    segments(ll, 1)
    t = Time()
    resp = get(ll, f"/{CH}/360p/r1/00000001.0.m4s", "", t)
    assert resp.status == 404 and "was not published in time" in resp.text
    assert t.t - 1000.0 <= 6.0 + 2 * llorigin.POLL


# --------------------------------------------------------------------------- missing, late, corrupt parts


def test_a_missing_part_becomes_a_slate_part_and_does_not_stall_the_parts_after_it(ll: Pipeline) -> None:
    segments(ll, 1)
    send(ll, 1, 0)
    ll.clock.advance(0.5)  # part 1 is lost on its way
    send(ll, 1, 2)
    send(ll, 1, 3)
    # Part 2 has been ready 0.5 s: not yet (the wait is two part durations).
    assert "00000001.1.m4s" not in get(ll, f"/{CH}/360p/ll.m3u8").text.split("PRELOAD-HINT")[0]
    ll.clock.advance(0.6)
    send(ll, 2, 0, advance=0.0)  # the next part wakes the packager: the hole is due now
    text = get(ll, f"/{CH}/360p/ll.m3u8").text
    uris = [ln.split('URI="')[1].split('"')[0] for ln in text.splitlines() if ln.startswith("#EXT-X-PART:")]
    assert uris[-5:] == ["r1/00000001.0.m4s", "r1/00000001.1.m4s", "r1/00000001.2.m4s", "r1/00000001.3.m4s",
                         "r1/00000002.0.m4s"]
    assert ll.listed(CH) == ["r1/00000000.m4s", "r1/00000001.m4s"]
    slate = boxes.fragments_info(ll.origin_bytes(f"{CH}/360p/r1/00000001.1.m4s"))
    whole = boxes.fragments_info(ll.origin_bytes(f"{CH}/360p/r1/00000001.m4s"))
    assert sum(f.duration for f in whole) == 180_000 and slate[0].decode_time == whole[1].decode_time
    meta_item = ll.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"]
    assert int(meta_item["slate_segments"]) == 1  # counted where `slipstream status` reports slate
    # The lost part arriving now is late: dropped, its slot stays slate.
    assert send(ll, 1, 1)[0].startswith("late")


def test_a_corrupt_part_is_slated_at_once(ll: Pipeline) -> None:
    segments(ll, 1)
    assert send(ll, 1, 0, body=b"CORRUPT bytes") == ["invalid"]
    text = get(ll, f"/{CH}/360p/ll.m3u8").text
    assert 'URI="r1/00000001.0.m4s"' in text
    assert ll.head(f"{CH}/audio/r1/00000001.0.m4s")["ContentType"] == "audio/mp4"


def test_a_part_longer_than_the_part_target_is_refused_and_slated(ll: Pipeline) -> None:
    segments(ll, 1)
    out = send(ll, 1, 0, body=part_body(1, 0, duration=0.7))
    assert out == ["invalid"]
    item = ll.table.get_item(Key={"pk": f"CH#{CH}", "sk": parts.part_sk(1, 1, 0)})["Item"]
    assert "longer than PART-TARGET 0.563 s" in item["error"]


# --------------------------------------------------------------------------- delta updates


def test_delta_updates_skip_the_old_segments(ll: Pipeline) -> None:
    segments(ll, 12)
    send(ll, 12, 0)
    full = get(ll, f"/{CH}/360p/ll.m3u8").text
    delta = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_skip=YES").text
    full_pl, delta_pl = m3u8.loads(full), m3u8.loads(delta)
    assert delta_pl.media_sequence == full_pl.media_sequence
    skipped = int(delta.split("#EXT-X-SKIP:SKIPPED-SEGMENTS=")[1].split("\n")[0])
    kept = [s.uri for s in delta_pl.segments if s.uri]
    assert skipped > 0 and [s.uri for s in full_pl.segments if s.uri][skipped:] == kept
    assert sum(2.0 for _ in kept) >= 12.0  # the Skip Boundary: at least six target durations stay
    assert delta.split("r1/00000011.m4s\n")[1] == full.split("r1/00000011.m4s\n")[1]  # the same live edge
    v2 = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_skip=v2").text
    assert f'#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped},RECENTLY-REMOVED-DATERANGES=""' in v2


# --------------------------------------------------------------------------- stop and end


def test_a_stop_releases_held_requests_with_the_playlist_and_endlist(ll: Pipeline) -> None:
    segments(ll, 2)
    send(ll, 2, 0)

    def stop(n: int) -> None:
        if n == 3:
            ll.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                                 ExpressionAttributeNames={"#s": "state"},
                                 ExpressionAttributeValues={":s": records.STOPPING})

    t = Time(stop)
    views = Views(read_later=lambda read: read())  # the full read in the request: the fake clock times it
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=2&_HLS_part=1", t, views)
    assert resp.status == 200 and resp.text.endswith("#EXT-X-ENDLIST\n")
    assert resp.headers["Cache-Control"] == "no-store"  # a restart reopens the same URL
    assert "PRELOAD-HINT" not in resp.text
    assert t.t - 1000.0 < llorigin.REFRESH + 0.5  # released within a refresh, not after 3 target durations (6 s)


def test_stop_closes_the_last_segment_with_the_parts_it_has(ll: Pipeline) -> None:
    from chalicelib.pipeline import publish

    segments(ll, 2)
    send(ll, 2, 0)
    send(ll, 2, 1)
    ll.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                         ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPING})
    ll.deps.store.request_seal(CH, 1, ll.clock())
    ll.clock.advance(publish.SEAL_GRACE + 0.1)
    out = publish.package(CH, ll.deps, reasons=["stop"], force=True)
    assert out.sealed
    vod = m3u8.loads(ll.origin(f"{CH}/360p/vod-r1.m3u8"))
    assert [s.uri for s in vod.segments] == ["r1/00000000.m4s", "r1/00000001.m4s", "r1/00000002.m4s"]
    assert vod.segments[-1].duration == pytest.approx(1.0)  # the two parts it had
    assert len(boxes.fragments_info(ll.origin_bytes(f"{CH}/360p/r1/00000002.m4s"))) == 2


def test_the_playback_urls_include_ll_hls_for_low_latency_channels(ll: Pipeline) -> Any:
    from chalicelib.control import channels

    class Store:
        def __init__(self, rec: records.ChannelRecord) -> None:
            self.rec = rec

        def get(self, cid: str) -> records.ChannelRecord:
            return self.rec

    class Ctl:
        settings = ll.deps.settings
        signer = None
        store = Store(ll.meta(CH))

    out = channels.playback(Ctl(), CH)  # type: ignore[arg-type]
    assert out["ll_hls"].endswith(f"/{CH}/ll.m3u8") and out["hls"].endswith(f"/{CH}/master.m3u8")


def test_a_deleted_channel_answers_with_its_ended_playlist_not_a_wait(ll: Pipeline) -> None:
    segments(ll, 2)
    ll.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                         ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.DELETED})
    t = Time()
    resp = get(ll, f"/{CH}/360p/ll.m3u8", "_HLS_msn=2&_HLS_part=0", t)
    assert resp.status == 200 and resp.text.endswith("#EXT-X-ENDLIST\n") and t.sleeps == 0


# --------------------------------------------------------------------------- the update rules


def test_every_ll_version_the_origin_serves_keeps_the_update_rules_through_a_lost_part_and_a_stop(
        ll: Pipeline) -> None:
    """Given parts arriving one by one for 9 segments, one of them lost (slated) and the channel stopping,
    when the origin's full LL playlist of each rendition is read after each part, then every version passes
    the LL rules against the one before (devtools.updates.ll_violations), and each delta update matches
    the full playlist of the same moment."""
    from devtools.updates import delta_violations, ll_violations

    names = ("360p", "240p", "audio")
    prev: dict[str, str | None] = dict.fromkeys(names)
    found: list[str] = []
    deltas = 0

    def look(label: str) -> None:
        nonlocal deltas
        for r in names:
            text = get(ll, f"/{CH}/{r}/ll.m3u8").text
            others = tuple(f"../{o}/ll.m3u8" for o in names if o != r)
            found.extend(f"{label} {r}: {v}" for v in ll_violations(prev[r], text, others))
            prev[r] = text
            if "#EXT-X-ENDLIST" not in text:
                delta = get(ll, f"/{CH}/{r}/ll.m3u8", "_HLS_skip=v2" if deltas % 2 else "_HLS_skip=YES").text
                if "#EXT-X-SKIP:" in delta:
                    deltas += 1
                    found.extend(f"{label} {r} delta: {v}" for v in delta_violations(text, delta))

    for seq in range(9):
        for i in range(K):
            if (seq, i) == (4, 2):
                ll.clock.advance(0.5)  # lost on its way: slated once a later part has waited
                continue
            send(ll, seq, i)
            look(f"{seq}.{i}")
    ll.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                         ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPING})
    look("stopped")
    assert found == [], found[:10]
    assert deltas > 0 and all(p is not None and p.endswith("#EXT-X-ENDLIST\n") for p in prev.values())


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_one_origin_process_keeps_the_update_rules_while_its_full_reads_end_parts_later(
        ll: Pipeline, lag: int) -> None:
    """Given one origin process (one Views) looking after each part, whose full reads of the channel's state
    start every REFRESH and end `lag` parts later (having read the store when they started), then every
    version it serves passes the LL rules against the one before: a read that began before a segment was
    written never takes that segment or the next one's parts back; and the stop a read finds ends them."""
    from devtools.updates import ll_violations

    names = ("360p", "240p", "audio")
    prev: dict[str, str | None] = dict.fromkeys(names)
    found: list[str] = []
    read = llorigin.read_inputs
    started: list[tuple[int, Any, Callable[[], None]]] = []  # (parts sent then, what the store said then, the job)
    t = Time()
    sent = 0

    def later(job: Callable[[], None]) -> None:
        started.append((sent, read(CH, ll.deps, None, t.t), job))

    def end_reads(lag: int) -> None:
        while started and sent - started[0][0] >= lag:  # a read ends with what it read when it began
            _, inputs, job = started.pop(0)
            llorigin.read_inputs = functools.partial(lambda found, *args, **kwargs: found, inputs)
            try:
                job()
            finally:
                llorigin.read_inputs = read

    views = Views(read_later=later)

    def look(label: str) -> None:
        for r in names:
            text = get(ll, f"/{CH}/{r}/ll.m3u8", "", t, views).text
            found.extend(f"{label} {r}: {v}" for v in ll_violations(prev[r], text, tuple(
                f"../{o}/ll.m3u8" for o in names if o != r)))
            prev[r] = text

    segments(ll, 2)
    look("start")
    for seq in range(2, 9):
        for i in range(K):
            send(ll, seq, i)
            sent += 1
            end_reads(lag)
            for _ in range(2):
                t.t += 0.25
                look(f"{seq}.{i}")
    assert len(found) == 0 and sent == 28, found[:10]
    assert 'URI="r1/00000008.3.m4s"' in (prev["360p"] or "")
    ll.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                         ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPING})
    t.t += llorigin.REFRESH + llorigin.LATE_REFRESH
    look("stopping")
    end_reads(0)
    t.t += llorigin.POLL
    look("stopped")
    assert found == [], found[:10]
    assert all(p is not None and p.endswith("#EXT-X-ENDLIST\n") for p in prev.values())


# --------------------------------------------------------------------------- in-band SCTE-35 in parts


def test_an_in_band_splice_out_in_a_part_becomes_one_break_like_a_chunks(ll: Pipeline) -> None:
    """An LL channel's encoder carries its SCTE-35 in the parts: ingest reads them as it does a chunk's
    (issue #11), so the break exists before the segment it splices on, and a resent cue is the same break."""
    from chalicelib.media import scte35
    from chalicelib.media.scte35 import TsCue, TsScan

    def scan(path: str, ext: str) -> TsScan | None:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        return TsScan(tuple(TsCue(scte35.decode(bytes.fromhex(h)), 0x86, None) for h in doc.get("scte35", [])), ())

    ll.deps.scan_cues = scan
    out = scte35.splice_insert(42, 1.4 + 3 * 2.0, 4.0)  # splice at segment 3's first frame, 4 s

    def with_cue(seq: int, index: int) -> bytes:
        return json.dumps({**json.loads(part_body(seq, index)), "scte35": [out.data.hex()]}).encode()

    segments(ll, 1)
    for i in range(K):  # resent in every part of segment 1
        assert send(ll, 1, i, body=with_cue(1, i)) == ["accepted"]
    [item] = ll.deps.store.ad_break_items(CH)
    assert (item["source"], int(item["splice_event_id"]), float(item["media_time"])) == ("source", 42, 6.0)
    assert item["scte35_out"] == out.base64
