"""The pipeline end to end on moto: ingest -> transcode -> package -> origin, with the failure cases.

Every slot is published once, as media or as slate; runs get their own segment URLs while the
playlist URLs continue; what is published is what ingest accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser
from pipeline_harness import TS_START, FakeCdn, Pipeline

from chalicelib import records
from chalicelib.media.timeline import Timeline
from chalicelib.pipeline import publish
from chalicelib.pipeline.queues import PackageMessage
from chalicelib.pipeline.replay import replay_dlq
from chalicelib.transcode import boxes
from tests.support.clock import T0

CH = "news"


def live(pipe: Pipeline, n: int, cid: str = CH, first: int = 0, offset: float = 0.0) -> None:
    """n chunks arrive 2 s apart and are processed as they come."""
    for seq in range(first, first + n):
        pipe.clock.advance(2)
        assert pipe.push(cid, seq, start=1.4 + offset + seq * 2.0) == ["accepted"]
        pipe.pump()


def uris(n: int, run: int = 1, first: int = 0) -> list[str]:
    return [f"r{run}/{i:08d}.m4s" for i in range(first, first + n)]


def mpd_segments(text: str) -> list[tuple[str, str, int, int]]:
    """(period id, media template, number, t) of every video segment the MPD lists."""
    out = []
    for period in MPEGDASHParser.parse(text).periods:
        tmpl = period.adaptation_sets[0].segment_templates[0]
        n, t = tmpl.start_number, 0
        for s in tmpl.segment_timelines[0].Ss:
            t = s.t if s.t is not None else t
            for _ in range((s.r or 0) + 1):
                out.append((period.id, tmpl.media, n, t))
                n, t = n + 1, t + s.d
    return out


def test_given_a_running_channel_then_chunks_are_published_in_order_with_caching_headers(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 3)
    for r in ("360p", "240p", "audio"):
        assert pipe.listed(CH, r) == uris(3)
        seg = pipe.head(f"{CH}/{r}/r1/00000001.m4s")
        assert seg["CacheControl"] == "public, max-age=1209600, immutable"
        assert seg["ContentType"] == ("audio/mp4" if r == "audio" else "video/mp4")
        assert pipe.head(f"{CH}/{r}/r1/init.mp4")["ContentType"] == "video/mp4"
    playlist = pipe.head(f"{CH}/360p/live.m3u8")
    assert playlist["CacheControl"] == "public, max-age=1"
    assert playlist["ContentType"] == "application/vnd.apple.mpegurl"
    master = pipe.origin(f"{CH}/master.m3u8")
    assert "360p/live.m3u8" in master and 'CODECS="avc1.42c01e,mp4a.40.2"' in master  # from the bitstream
    mpd = pipe.origin(f"{CH}/manifest.mpd")
    assert 'type="dynamic"' in mpd and pipe.head(f"{CH}/manifest.mpd")["ContentType"] == "application/dash+xml"
    assert [(m, n, t) for _, m, n, t in mpd_segments(mpd)] == [
        ("$RepresentationID$/r1/$Number%08d$.m4s", i, i * 180_000) for i in range(3)]
    # Placement on the grid: the transcoder was asked for exactly the frames the source clock says.
    assert [(j.first_frame, j.frames) for j in pipe.transcoder.jobs] == [(0, 50), (50, 50), (100, 50)]
    meta = pipe.meta(CH)
    assert meta.last_seq == 2 and meta.last_segment_at


def test_the_audio_playlist_lists_what_the_audio_segments_hold(pipe: Pipeline) -> None:
    """Copied AAC: a segment holds the encoder's frames, 93 or 94 of them (2 s = 93.75 frames)."""
    pipe.channel(CH)
    live(pipe, 4)
    audio = m3u8.loads(pipe.origin(f"{CH}/audio/live.m3u8"))
    frames = [int(pipe.chunk_item(CH, s)["a_dur"]) // 1024 for s in range(4)]  # type: ignore[index]
    assert sorted(set(frames)) == [93, 94] and sum(frames) == 375  # 8 s of 48 kHz audio
    assert [s.duration for s in audio.segments] == [round(f * 1024 / 48000, 3) for f in frames]
    tl = MPEGDASHParser.parse(pipe.origin(f"{CH}/manifest.mpd")).periods[0].adaptation_sets[1]
    ss = tl.segment_templates[0].segment_timelines[0].Ss
    assert ss[0].t is not None and all(s.t is None for s in ss[1:])  # contiguous: no @t after the first
    assert sum(s.d * ((s.r or 0) + 1) for s in ss) == 375 * 1024


def test_given_a_duplicate_event_then_one_segment_and_one_job(pipe: Pipeline) -> None:
    pipe.channel(CH)
    event = pipe.upload(CH, 0)
    assert pipe.ingest(event) == ["accepted"]
    assert pipe.ingest(event) == ["accepted"]  # Powertools Idempotency replays the stored result
    pipe.deps.extra.pop("idempotency")  # ... and without it (record expired) the SEG# guard holds
    assert pipe.ingest(event) == ["duplicate"]
    jobs = [json.loads(m["Body"]) for m in pipe.receive("transcode")]
    assert [j["kind"] for j in jobs].count("chunk") == 1 and [j["kind"] for j in jobs].count("slate") == 1


def test_given_a_run_s_first_chunk_then_its_own_job_is_queued_ahead_of_the_run_s_slate(pipe: Pipeline) -> None:
    """The transcode pool takes the oldest message first: the run's first segment must not wait behind a
    slate render that only a later missing chunk needs (the channel's start was #16's latency tail)."""
    pipe.channel(CH)
    assert pipe.ingest(pipe.upload(CH, 0)) == ["accepted"]
    assert pipe.ingest(pipe.upload(CH, 1)) == ["accepted"]
    jobs = [json.loads(m["Body"]) for m in pipe.receive("transcode")]
    assert [(j["kind"], j["seq"]) for j in jobs] == [("chunk", 0), ("slate", 0), ("chunk", 1)]


def test_given_the_same_file_pushed_in_a_new_run_then_it_is_ingested_not_replayed(pipe: Pipeline) -> None:
    """Stop, start, push the same file again: identical ETags, but a new run, so a new chunk."""
    pipe.channel(CH)
    event = pipe.upload(CH, 0)
    assert pipe.ingest(event) == ["accepted"]
    pipe.receive("transcode")  # the first run's jobs were taken
    pipe.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET run_no = :r",
                           ExpressionAttributeValues={":r": 2})
    assert pipe.ingest(event) == ["accepted"]
    assert pipe.chunk_item(CH, 0, run=2) is not None


def test_given_a_second_upload_with_another_etag_then_it_is_rejected_as_a_conflict(pipe: Pipeline) -> None:
    pipe.channel(CH)
    assert pipe.push(CH, 0) == ["accepted"]
    [out] = pipe.push(CH, 0, start=99.0)
    assert out.startswith("rejected") and "another ETag" in out
    assert pipe.meta(CH).errors == 1


def test_given_a_conflicting_reupload_races_the_transcode_then_the_accepted_bytes_are_published(
        pipe: Pipeline) -> None:
    """The same key re-uploaded with other bytes right after acceptance: ingest refuses it, and the
    worker still transcodes exactly the version ingest accepted -- now and on any retry or replay."""
    pipe.channel(CH)
    pipe.clock.advance(2)
    assert pipe.push(CH, 0) == ["accepted"]  # starts at 1.4 s of the source clock
    [out] = pipe.push(CH, 0, start=51.4)  # other bytes under the same key, before the transcode ran
    assert "another ETag" in out
    pipe.transcoder.crashes[0] = 1  # and the first transcode attempt dies: the retry must not pick up B
    pipe.pump()
    body = pipe.origin_bytes(f"{CH}/360p/r1/00000000.m4s").decode()
    assert body.endswith(f"src{round(1.4 * 90_000)}")
    assert len(pipe.transcoder.jobs) == 2


@pytest.mark.parametrize("state", [records.STOPPED, records.IDLE, records.CREATING])
def test_given_a_channel_not_running_then_uploads_are_rejected_and_counted(pipe: Pipeline, state: str) -> None:
    pipe.channel(CH, state=state)
    [out] = pipe.push(CH, 0)
    assert out == f"rejected: channel is {state}, not accepting chunks"
    meta = pipe.meta(CH)
    assert meta.errors == 1 and "not accepting" in meta.error
    assert pipe.chunk_item(CH, 0) is None and pipe.queue_depth("transcode") == 0


def test_given_an_unknown_channel_or_a_bad_key_then_nothing_is_processed(pipe: Pipeline) -> None:
    assert pipe.push("ghost", 0) == ["rejected: unknown channel"]
    [bad] = pipe.ingest(pipe.upload(CH, 0, key="news/1.ts"))
    assert bad.startswith("rejected") and "does not match" in bad
    assert pipe.queue_depth("transcode") == 0


def test_given_chunks_finish_out_of_order_then_the_later_one_waits_within_the_slate_wait(pipe: Pipeline) -> None:
    pipe.channel(CH)
    for seq in range(3):
        pipe.clock.advance(2)
        pipe.push(CH, seq)
    pipe.pump_transcode(only=lambda m: m.seq != 1)  # 0 and 2 finish, 1 is slow
    pipe.pump_package()
    assert pipe.listed(CH) == uris(1)
    pipe.clock.advance(1)
    pipe.pump()  # 1 finishes within the wait (one segment after 2 was ready)
    assert pipe.listed(CH) == uris(3)


def test_given_a_lost_chunk_then_its_slot_is_slate_one_segment_after_a_later_one_is_ready(pipe: Pipeline) -> None:
    pipe.channel(CH)
    for seq in (0, 2, 3):  # chunk 1 is lost by the encoder
        pipe.clock.advance(2)
        pipe.push(CH, seq)
        pipe.pump()
    # Chunk 2 was ready 2 s before 3 was: by then 1 had its one segment of grace, so it is slate.
    assert pipe.listed(CH) == uris(4)
    for r in ("360p", "240p", "audio"):
        assert pipe.listed(CH, r) == uris(4)
    # Real media at the slot's URL, in every rendition, on the grid: 50 frames from 2.0 s.
    init = b""
    frags = boxes.fragments_info(pipe.origin_bytes(f"{CH}/360p/r1/00000001.m4s"), init)
    assert frags[0].decode_time == 180_000 and sum(f.duration for f in frags) == 180_000 and frags[0].starts_with_sync
    audio = boxes.fragments_info(pipe.origin_bytes(f"{CH}/audio/r1/00000001.m4s"))
    c0, c2 = pipe.chunk_item(CH, 0), pipe.chunk_item(CH, 2)
    assert c0 is not None and c2 is not None
    assert audio[0].decode_time == int(c0["a_start"]) + int(c0["a_dur"])  # where chunk 0's audio ends
    assert audio[0].decode_time + audio[0].duration == int(c2["a_start"])  # where chunk 2's audio starts
    # DASH lists the same slot, as media (there is no GAP in DASH).
    assert [n for _, _, n, _ in mpd_segments(pipe.origin(f"{CH}/manifest.mpd"))] == [0, 1, 2, 3]
    meta = pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"]
    assert int(meta["slate_segments"]) == 1


def test_given_the_encoder_goes_quiet_then_slate_stands_in_for_three_segments_and_the_edge_then_waits(
        pipe: Pipeline) -> None:
    """Input loss: nothing after the hole, yet the playlists advance (with slate) for the watchdog's input-gap
    time; past that the encoder has stopped, and nothing more is made up."""
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    live(pipe, 2)
    pipe.clock.advance(60)
    publish.package(CH, pipe.deps)
    assert pipe.listed(CH) == uris(5)
    raw = pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"]  # what /status reports
    assert int(raw["slate_segments"]) == 3 and "input loss" in str(raw["slate_segments_last"])


def test_given_an_upload_reaches_ingest_then_the_channel_knows_it_is_in_before_it_is_recorded(pipe: Pipeline) -> None:
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    live(pipe, 2)
    raw = pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"]
    assert sorted(raw["seen"].values()) == ["1:0", "1:1"]  # what the packager reads: input loss leaves them


def slates(pipe: Pipeline) -> int:
    """Slate segments the channel counted (what /status reports)."""
    return int(pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"].get("slate_segments", 0))


def test_given_a_chunk_is_in_the_ingest_bucket_but_its_ingest_has_not_run_then_input_loss_leaves_its_slot(
        pipe: Pipeline) -> None:
    """Soak seed 7 (2 runs of 2): chunk 5, one slot out of order, was uploaded 2.15 s after it was due and a
    cold ingest sandbox took 1.3 s to start, so ingest's `seen` note came after the input-loss deadline and
    the real chunk was replaced by slate. The packager looks in the ingest bucket before it takes the slot."""
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    live(pipe, 2)  # 2 is due at 6 (2 s after 1 came), lost at 9
    pipe.clock.advance(3)
    event = pipe.upload(CH, 2)  # uploaded a segment late; its event has not reached ingest yet
    pipe.clock.advance(2.5)  # past the input-loss deadline
    publish.package(CH, pipe.deps)
    assert pipe.listed(CH) == uris(2)  # not slated
    assert slates(pipe) == 0
    assert pipe.ingest(event) == ["accepted"]  # not "late"
    pipe.pump()
    assert pipe.listed(CH) == uris(3)
    assert pipe.chunk_item(CH, 2)["fill"] == "media" and slates(pipe) == 0


def test_given_an_upload_never_reaches_ingest_then_input_loss_takes_its_slot_after_a_bounded_hold(
        pipe: Pipeline) -> None:
    pipe.channel(CH, input_loss_wait=3.0)
    live(pipe, 2)
    pipe.clock.advance(3)
    pipe.upload(CH, 2)  # its event is lost
    pipe.clock.advance(2.5)
    publish.package(CH, pipe.deps)
    assert pipe.listed(CH) == uris(2)
    pipe.clock.advance(publish.INGEST_HOLD.total_seconds())
    publish.package(CH, pipe.deps)
    # The edge moves on: 2 and, by now, the input-loss slots after it.
    assert pipe.listed(CH) == uris(5) and pipe.chunk_item(CH, 2)["fill"] == "slate"


def test_given_the_slots_object_is_from_before_the_run_then_input_loss_takes_the_slot(pipe: Pipeline) -> None:
    """Keys carry no run: after a restart the previous run's chunk of that seq is still in the bucket."""
    pipe.upload(CH, 2)  # written now (S3's clock), before the run below starts
    pipe.clock.now = datetime.now(UTC) + timedelta(seconds=60)
    pipe.channel(CH, input_loss_wait=3.0)
    live(pipe, 2)
    pipe.clock.advance(5.5)  # past the input-loss deadline of 2
    publish.package(CH, pipe.deps)
    assert pipe.listed(CH) == uris(3) and slates(pipe) == 1


def test_given_a_chunk_comes_after_input_loss_slated_its_slot_then_it_is_dropped_and_counted(pipe: Pipeline) -> None:
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    live(pipe, 2)
    pipe.clock.advance(3.5)  # 2 was due 2 s after 1 came; slated once nothing came for 1.5 segments more
    publish.package(CH, pipe.deps)
    assert pipe.listed(CH) == uris(2)
    pipe.clock.advance(1.6)
    publish.package(CH, pipe.deps)
    assert pipe.listed(CH) == uris(3)
    slate = pipe.origin_bytes(f"{CH}/360p/r1/00000002.m4s")
    [out] = pipe.push(CH, 2, start=1.4 + 2 * 2.0)
    assert out.startswith("late")
    pipe.pump()
    assert pipe.origin_bytes(f"{CH}/360p/r1/00000002.m4s") == slate  # never rewritten
    assert pipe.push(CH, 2, start=1.4 + 2 * 2.0)[0].startswith("late")  # the encoder retries it
    assert pipe.meta(CH).late_chunks == 1  # one chunk, counted once
    item = pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "SEG#000001#000000000002"}).get("Item")
    assert item is not None and item.get("late") and item["fill"] == "slate"  # the slot says why it is slate


def test_given_a_chunk_arrives_after_its_slot_was_slated_then_it_is_dropped_and_counted(pipe: Pipeline) -> None:
    pipe.channel(CH)
    for seq in (0, 2, 3):
        pipe.clock.advance(2)
        pipe.push(CH, seq)
        pipe.pump()
    slate = pipe.origin_bytes(f"{CH}/360p/r1/00000001.m4s")
    pipe.clock.advance(1)
    [out] = pipe.push(CH, 1)
    assert out.startswith("late")
    pipe.pump()
    assert pipe.origin_bytes(f"{CH}/360p/r1/00000001.m4s") == slate  # never rewritten
    meta = pipe.meta(CH)
    assert meta.late_chunks == 1


def test_given_a_transcode_that_finishes_after_its_slot_was_slated_then_it_never_replaces_the_slate(
        pipe: Pipeline) -> None:
    pipe.channel(CH)
    stuck: list[Any] = []
    for seq in range(4):
        pipe.clock.advance(2)
        pipe.push(CH, seq)
        if seq == 1:
            stuck = pipe.take("transcode", lambda m: m.seq == 1 and m.kind == "chunk")  # its worker is slow
        pipe.pump()
    assert pipe.listed(CH) == uris(4)
    slate = pipe.origin_bytes(f"{CH}/360p/r1/00000001.m4s")
    assert [pipe.run_taken(m) for m in stuck] == ["late"]  # its worker finally finishes: the claim fails
    assert pipe.origin_bytes(f"{CH}/360p/r1/00000001.m4s") == slate
    assert pipe.meta(CH).late_chunks == 1


def test_given_a_reencoded_chunk_whose_predecessor_is_not_recorded_yet_then_it_is_primed_from_the_bucket(
        pipe: Pipeline) -> None:
    """Uploads race: chunk 2 is transcoded while chunk 1 is uploaded but not yet ingested. Its audio
    (44.1 kHz on a 48 kHz ladder: re-encoded) is still primed with chunk 1's tail, read from the bucket,
    so no cold encoder start (an audible fade-in) at the boundary."""
    pipe.channel(CH)

    def body(seq: int) -> bytes:
        return json.dumps({"start": TS_START + seq * 2.0, "duration": 2.0, "rate": 44_100}).encode()

    pipe.push(CH, 0, body=body(0))
    pipe.pump()
    pipe.clock.advance(2)
    late_event = pipe.upload(CH, 1, body=body(1))  # in the bucket, its notification not handled yet
    pipe.clock.advance(2)
    pipe.push(CH, 2, body=body(2))
    pipe.pump_transcode()
    assert pipe.transcoder.prerolls.get(2) == body(1)
    assert 0 not in pipe.transcoder.prerolls  # the first chunk has no predecessor
    job2 = next(j for j in pipe.transcoder.jobs if j.seq == 2)
    assert job2.preroll_audio is None  # an unrecorded predecessor is probed by the job, never trusted
    pipe.ingest(late_event)
    pipe.pump()
    assert pipe.transcoder.prerolls.get(1) == body(0)
    assert pipe.listed(CH) == uris(3)


def test_given_a_corrupt_chunk_then_its_slot_is_slate_at_once_and_the_channel_keeps_running(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 1)
    pipe.clock.advance(2)
    assert pipe.push(CH, 1, body=b"CORRUPT" + b"\0" * 993) == ["invalid"]
    pipe.pump()
    pipe.clock.advance(2)
    pipe.push(CH, 2)
    pipe.pump()
    assert pipe.listed(CH) == uris(3)
    item = pipe.chunk_item(CH, 1)
    assert item is not None and item["status"] == "invalid" and "188-byte" in item["error"]
    assert item["fill"] == "slate" and item["slate_reason"] == "invalid"
    meta = pipe.meta(CH)
    assert meta.state == records.RUNNING and meta.errors == 1 and "chunk 1" in meta.error


def test_given_a_chunk_too_long_for_the_target_duration_then_its_slot_is_slate_with_the_fix_named(
    pipe: Pipeline,
) -> None:
    """TARGETDURATION cannot change mid-event: a 4 s chunk on a 2 s channel is refused, not listed."""
    pipe.channel(CH)
    live(pipe, 1)
    pipe.clock.advance(2)
    long_chunk = json.dumps({"start": 3.4, "duration": 4.0}).encode()  # seq 1 of a TS clock at 1.4 s
    assert pipe.push(CH, 1, body=long_chunk) == ["invalid"]
    pipe.pump()
    pipe.clock.advance(4)
    pipe.push(CH, 2)
    pipe.pump()
    assert pipe.listed(CH) == uris(3)
    item = pipe.chunk_item(CH, 1)
    assert item is not None and "4.00 s" in item["error"] and "every 2 s" in item["error"]
    assert m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8")).target_duration == 2


def test_given_the_gap_option_then_hls_marks_the_slate_as_a_gap_and_dash_lists_it(pipe: Pipeline) -> None:
    pipe.channel(CH, missing_media="gap")
    for seq in (0, 2, 3):
        pipe.clock.advance(2)
        pipe.push(CH, seq)
        pipe.pump()
    assert pipe.listed(CH) == ["r1/00000000.m4s", "GAP:r1/00000001.m4s", "r1/00000002.m4s", "r1/00000003.m4s"]
    assert [n for _, _, n, _ in mpd_segments(pipe.origin(f"{CH}/manifest.mpd"))] == [0, 1, 2, 3]
    assert m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8")).version == 6


def test_given_an_encoder_clock_step_then_a_new_period_and_a_discontinuity_with_pdt_going_on(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 2)
    live(pipe, 2, first=2, offset=-1.0)  # the encoder's clock stepped back 1 s after chunk 1
    pl = m3u8.loads(pipe.origin(f"{CH}/360p/dvr.m3u8"))
    assert [bool(s.discontinuity) for s in pl.segments] == [False, False, True, False]
    pdts = [s.current_program_date_time for s in pl.segments]
    assert pdts[2] == pdts[1] + (pdts[1] - pdts[0])  # no overlap: the new Period starts where the last ended
    segs = mpd_segments(pipe.origin(f"{CH}/manifest.mpd"))
    assert [p for p, _, _, _ in segs] == ["r1-0", "r1-0", "r1-2", "r1-2"]
    periods = MPEGDASHParser.parse(pipe.origin(f"{CH}/manifest.mpd")).periods
    assert periods[1].start == "PT4S" and periods[1].adaptation_sets[0].segment_templates[0].presentation_time_offset \
        == segs[2][3]


def test_given_a_transcode_crash_then_the_retry_publishes_it(pipe: Pipeline) -> None:
    pipe.channel(CH)
    pipe.transcoder.crashes[0] = 1
    pipe.clock.advance(2)
    pipe.push(CH, 0)
    first = pipe.pump_transcode()
    assert any(r.startswith("failed") for r in first) and first[-1] == "done"
    pipe.pump_package()
    assert pipe.listed(CH) == uris(1)
    assert pipe.queue_depth("transcode-dlq") == 0


def test_given_a_job_fails_three_times_then_it_is_dead_lettered_and_replay_recovers_it(pipe: Pipeline) -> None:
    pipe.channel(CH)
    pipe.transcoder.crashes[0] = 3
    pipe.clock.advance(2)
    pipe.push(CH, 0)
    results = [r for r in pipe.pump_transcode() if r != "slate"]
    assert results and all(r.startswith("failed") for r in results) and len(results) == 3
    assert pipe.queue_depth("transcode-dlq") == 1
    assert replay_dlq(pipe.sqs, pipe.queues["transcode"]) == 1
    assert pipe.queue_depth("transcode-dlq") == 0
    assert pipe.pump_transcode() == ["done"]
    pipe.pump_package()
    assert pipe.listed(CH) == uris(1)


def test_given_rendition_fanout_then_one_job_per_rendition(pipe: Pipeline) -> None:
    pipe.channel(CH, fanout="rendition")
    pipe.clock.advance(2)
    pipe.push(CH, 0)
    jobs = [json.loads(m["Body"])["renditions"] for m in pipe.receive("transcode")]
    assert sorted(j[0] for j in jobs if j) == ["240p", "360p", "audio"]


def stop(pipe: Pipeline, cid: str = CH) -> None:
    pipe.table.update_item(Key={"pk": f"CH#{cid}", "sk": "META"}, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPING})
    pipe.clock.advance(10)  # past the seal grace
    assert publish.finalize_vod(cid, pipe.deps, timeout=5)
    pipe.table.update_item(Key={"pk": f"CH#{cid}", "sk": "META"}, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPED})


def start(pipe: Pipeline, cid: str = CH) -> None:
    pipe.table.update_item(Key={"pk": f"CH#{cid}", "sk": "META"},
                           UpdateExpression="SET #s = :s ADD run_no :one",
                           ExpressionAttributeNames={"#s": "state"},
                           ExpressionAttributeValues={":s": records.RUNNING, ":one": 1})


def objects(pipe: Pipeline, suffix: str) -> dict[str, bytes]:
    listing = pipe.s3.list_objects_v2(Bucket=pipe.deps.settings.origin_bucket, Prefix=f"{CH}/")
    return {o["Key"]: pipe.origin_bytes(o["Key"]) for o in listing.get("Contents", []) if o["Key"].endswith(suffix)}


def test_given_a_stop_then_the_run_becomes_vod_and_the_live_playlists_stay_open(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 3)
    stop(pipe)
    vod = m3u8.loads(pipe.origin(f"{CH}/360p/vod-r1.m3u8"))
    assert vod.is_endlist and vod.playlist_type == "vod" and [s.uri for s in vod.segments] == uris(3)
    assert "360p/vod-r1.m3u8" in pipe.origin(f"{CH}/vod-r1.m3u8")
    static = MPEGDASHParser.parse(pipe.origin(f"{CH}/vod-r1.mpd"))
    assert static.type == "static" and static.media_presentation_duration == "PT6S"
    live_pl = m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8"))
    assert not live_pl.is_endlist and [s.uri for s in live_pl.segments] == uris(3)
    assert 'type="dynamic"' in pipe.origin(f"{CH}/manifest.mpd")


def test_given_a_stop_while_a_break_is_out_then_the_runs_vod_closes_it_where_the_run_ends(pipe: Pipeline) -> None:
    # Given a 30 s break from the second segment (2 s) of a 6 s run, still out of network at the stop
    pipe.channel(CH)
    live(pipe, 3)
    out_pdt = m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8")).segments[1].program_date_time
    pipe.table.put_item(Item={"pk": f"CH#{CH}", "sk": "BRK#b1", "id": "b1", "splice_event_id": 7,
                              "start": out_pdt.isoformat().replace("+00:00", "Z"), "duration": 30,
                              "kind": "splice_insert", "state": "scheduled", "source": "api",
                              "created_at": out_pdt.isoformat().replace("+00:00", "Z")})
    publish.package(CH, pipe.deps, reasons=["ad break b1 created"], force=True)
    assert "#EXT-X-CUE-OUT:30.000" in pipe.origin(f"{CH}/360p/live.m3u8")
    # When the run is stopped
    stop(pipe)
    # Then its VOD closes the break at the last segment's end (4 s after the out), before ENDLIST
    for rendition in ("360p", "audio"):
        text = pipe.origin(f"{CH}/{rendition}/vod-r1.m3u8")
        tail = text.rsplit("r1/00000002.m4s\n", 1)[1]
        assert tail.startswith("#EXT-OATCLS-SCTE35:") and "#EXT-X-CUE-IN\n" in tail, text
        assert '#EXT-X-DATERANGE:ID="b1",' in tail and ",DURATION=4.000,SCTE35-IN=" in tail, text
        assert tail.index("#EXT-X-CUE-IN\n") < tail.index("#EXT-X-ENDLIST\n") and tail.endswith("#EXT-X-ENDLIST\n")
    # ... and the static MPD's Event ends inside its Period
    static = MPEGDASHParser.parse(pipe.origin(f"{CH}/vod-r1.mpd"))
    [event] = static.periods[0].event_streams[0].events
    assert static.periods[0].duration == "PT6S" and int(event.duration) == 4 * 90000


def test_given_a_chunk_in_flight_at_stop_then_it_is_waited_for_and_a_straggler_after_the_seal_is_dropped(
        pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 2)
    pipe.clock.advance(2)
    pipe.push(CH, 2)  # in flight: received, not transcoded yet when the stop comes
    pipe.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.STOPPING})
    pipe.deps.store.request_seal(CH, 1, pipe.clock())
    publish.package(CH, pipe.deps)  # within the grace: 2 is not there yet, the run stays open
    pipe.pump_transcode(only=lambda m: m.kind == "slate")
    pipe.pump_transcode()
    pipe.pump_package()
    vod = m3u8.loads(pipe.origin(f"{CH}/360p/vod-r1.m3u8"))
    assert [s.uri for s in vod.segments] == uris(3)
    before = pipe.origin(f"{CH}/360p/vod-r1.m3u8")
    # A chunk for the sealed run that shows up now is dropped, and the VOD never changes.
    pipe.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":s": records.RUNNING})
    pipe.clock.advance(2)
    pipe.push(CH, 3)
    pipe.pump()
    assert pipe.origin(f"{CH}/360p/vod-r1.m3u8") == before
    assert uris(4)[3] not in pipe.listed(CH, window="dvr")


def test_given_a_restart_then_the_same_playlists_continue_and_nothing_immutable_is_rewritten(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 3)
    stop(pipe)
    segments_before = objects(pipe, ".m4s") | objects(pipe, "init.mp4")
    live_before = m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8"))
    mpd_before = MPEGDASHParser.parse(pipe.origin(f"{CH}/manifest.mpd"))
    start(pipe)
    live(pipe, 2, offset=500.0)  # the encoder restarts at seq 0 with another clock
    pl = m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8"))
    # The time off air is bridged with run 1's slate (3 segments at most) right after its end, listed
    # before run 2's first segment, so a viewer's buffer gets back what the stop took.
    bridge = uris(3, first=3)
    assert [s.uri for s in pl.segments] == uris(3) + bridge + uris(2, run=2)
    assert pl.media_sequence == live_before.media_sequence == 0  # the numbering continues: 0..7
    assert [bool(s.discontinuity) for s in pl.segments] == [False] * 6 + [True, False]
    assert pl.segments[6].init_section.uri == "r2/init.mp4"
    assert pl.segments[6].current_program_date_time >= pl.segments[5].current_program_date_time
    assert [s.current_program_date_time for s in pl.segments[3:6]] == [
        pl.segments[2].current_program_date_time + timedelta(seconds=2 * k) for k in (1, 2, 3)]
    vod = m3u8.loads(pipe.origin(f"{CH}/360p/vod-r1.m3u8"))
    assert [s.uri for s in vod.segments] == uris(3)  # the run's VOD stays as sealed
    mpd = MPEGDASHParser.parse(pipe.origin(f"{CH}/manifest.mpd"))
    assert mpd.availability_start_time == mpd_before.availability_start_time
    assert [p.id for p in mpd.periods] == ["r1-0", "r2-0"] and mpd.periods[0].start == mpd_before.periods[0].start
    after = objects(pipe, ".m4s") | objects(pipe, "init.mp4")
    assert {k: after[k] for k in segments_before} == segments_before  # not one byte rewritten
    assert all(f"{CH}/{r}/{u}" in after for r in ("360p", "240p", "audio") for u in bridge)
    assert [n for pid, _, n, _ in mpd_segments(pipe.origin(f"{CH}/manifest.mpd")) if pid == "r1-0"] == list(range(6))


def test_given_a_restart_while_the_run_is_still_stopping_then_a_clear_error(pipe: Pipeline) -> None:
    from chalicelib.control import channels
    from chalicelib.errors import ConflictError

    pipe.channel(CH, state=records.STOPPING)
    ctl: Any = type("Ctl", (), {"store": type("S", (), {"get": lambda self, cid: pipe.meta(cid)})()})()
    with pytest.raises(ConflictError, match="still STOPPING"):
        channels.start_channel(ctl, CH)


def test_given_a_delete_then_the_live_playlists_end_for_good(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 2)
    publish.end_event(CH, pipe.deps)
    assert m3u8.loads(pipe.origin(f"{CH}/360p/live.m3u8")).is_endlist
    mpd = MPEGDASHParser.parse(pipe.origin(f"{CH}/manifest.mpd"))
    assert mpd.type == "dynamic" and mpd.minimum_update_period is None and mpd.media_presentation_duration
    before = pipe.origin(f"{CH}/360p/live.m3u8")
    pipe.clock.advance(2)
    pipe.push(CH, 2)
    pipe.pump()
    assert pipe.origin(f"{CH}/360p/live.m3u8") == before  # nothing is added after ENDLIST


def test_republish_invalidates_manifests_once_and_coalesces_while_in_flight(pipe: Pipeline, cdn: FakeCdn) -> None:
    pipe.channel(CH)
    live(pipe, 1)
    assert cdn.sent == []  # routine publishing never invalidates: TTLs cover it
    publish.package(CH, pipe.deps, reasons=["ad break b1 created"], force=True)
    assert len(cdn.sent) == 1 and f"/{CH}/master.m3u8" in cdn.sent[0]
    assert not any(p.endswith(".m4s") for p in cdn.sent[0])
    publish.package(CH, pipe.deps, reasons=["ad break b1 cancelled"], force=True)
    publish.package(CH, pipe.deps, reasons=["ad break b2 created"], force=True)
    assert len(cdn.sent) == 1  # one in flight per channel: the others are parked
    cdn.complete_all()
    pipe.clock.advance(2)
    pipe.push(CH, 1)
    pipe.pump()
    assert len(cdn.sent) == 2  # both parked requests went out as one invalidation
    pipe.pump()
    assert len(cdn.sent) == 2


def published_seq(pipe: Pipeline, cid: str = CH) -> int:
    pub = pipe.table.get_item(Key={"pk": f"CH#{cid}", "sk": "PUB"})["Item"]
    return int(pub["runs"][-1]["last_seq"])


def test_given_work_arrives_while_another_packager_renders_then_no_update_is_lost(pipe: Pipeline) -> None:
    """Packager A holds the lease and renders; mid-render chunk 2 finishes and its worker (packager
    B) finds the lease taken and returns at once; A notices the new work on release and renders
    again, so chunk 2 is published although B never rendered it."""
    pipe.channel(CH)
    live(pipe, 2)
    real_render = pipe.deps.render
    renders: list[int] = []
    worker_results: list[str] = []

    def render_with_b_arriving(tl: Timeline, now: datetime) -> dict[str, str]:
        renders.append(len(tl.segments))
        if len(renders) == 1:
            pipe.clock.advance(2)
            pipe.push(CH, 2)
            worker_results.extend(pipe.pump_transcode())  # packages inline: finds A's lease
        return real_render(tl, now)

    pipe.deps.render = render_with_b_arriving
    a = publish.package(CH, pipe.deps, force=True)
    assert worker_results == ["done"]
    assert renders == [2, 3]  # B did not render (lease taken); A rendered again with chunk 2
    assert a.status == "published" and a.published_seq == 2
    assert pipe.listed(CH) == uris(3)


def test_given_many_packagers_race_in_threads_then_the_final_playlists_list_everything(pipe: Pipeline) -> None:
    import threading

    pipe.channel(CH)
    for seq in range(8):
        pipe.clock.advance(0.5)
        pipe.push(CH, seq)
    pipe.pump_transcode()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            publish.package(CH, pipe.deps)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pipe.listed(CH) == uris(8)
    pub = pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "PUB"})["Item"]
    assert "lease_owner" not in pub and published_seq(pipe) == 7


def test_replay_cli_moves_dead_letters_back_by_queue_name(pipe: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    from chalicelib.pipeline import replay

    for i in range(3):
        pipe.sqs.send_message(QueueUrl=pipe.queues["transcode-dlq"], MessageBody=json.dumps({"n": i}))
    assert replay.main(["--queue", "slipstream-transcode", "--dry-run"]) == 0
    assert "would move 3" in capsys.readouterr().out
    assert replay.main(["--queue", "slipstream-transcode", "--max", "2"]) == 0
    assert "moved 2" in capsys.readouterr().out
    assert pipe.queue_depth("transcode") == 2
    assert replay.main(["--queue", "slipstream-package-dlq"]) == 2  # a DLQ has no DLQ: clear error
    assert "no dead-letter queue" in capsys.readouterr().err


def test_the_cloudfront_adapter_sends_explicit_paths_and_reads_the_status(pipe: Pipeline) -> None:
    import boto3

    from chalicelib.errors import StoreError
    from chalicelib.pipeline.cdn import CloudFrontCdn, paths_for

    cf = boto3.client("cloudfront")
    dist = cf.create_distribution(DistributionConfig={
        "CallerReference": "t", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o", "DomainName": "origin.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o", "ViewerProtocolPolicy": "allow-all",
                                 "MinTTL": 0, "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })["Distribution"]["Id"]
    adapter = CloudFrontCdn(cf, dist)
    inv = adapter.invalidate(paths_for("adbreak", CH, ("360p",)), "ref-1")
    got = cf.get_invalidation(DistributionId=dist, Id=inv)["Invalidation"]["InvalidationBatch"]["Paths"]
    assert sorted(got["Items"]) == sorted(paths_for("adbreak", CH, ("360p",)))
    assert isinstance(adapter.in_progress(inv), bool)
    assert adapter.in_progress("does-not-exist") is False
    with pytest.raises(StoreError):
        CloudFrontCdn(cf, "NOPE").invalidate(["/x"], "ref-2")



def test_the_transcode_job_takes_ingests_probe_of_the_chunk_and_its_predecessor_instead_of_probing_again(
        pipe: Pipeline, tmp_path: Any) -> None:
    """Ingest probes every chunk (with the decode check) and the job reads the same object version: the
    probe travels in the chunk's record, so the worker starts no second ffmpeg to read timestamps
    (issue #10's transcode cost). A record without it (written before this, or damaged) is probed."""
    from tests.support.fake_media import fake_probe

    pipe.channel(CH)

    def body(seq: int) -> bytes:
        return json.dumps({"start": TS_START + seq * 2.0, "duration": 2.0, "rate": 44_100}).encode()

    def probed(seq: int) -> Any:
        path = tmp_path / f"{seq}.json"
        path.write_bytes(body(seq))
        return fake_probe(str(path))

    for seq in range(3):
        pipe.push(CH, seq, body=body(seq))
        pipe.pump()
        pipe.clock.advance(2)
    jobs = {j.seq: j for j in pipe.transcoder.jobs}
    assert [jobs[s].info for s in range(3)] == [probed(s) for s in range(3)]
    assert jobs[0].preroll_audio is None  # no predecessor: a cold start
    assert jobs[1].preroll_audio == probed(0).audio and jobs[2].preroll_audio == probed(1).audio
    assert pipe.listed(CH) == uris(3)


class CountingObjects:
    """The origin adapter, counting the manifest writes that reach it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.puts = inner, []

    def put(self, bucket: str, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        self.puts.append(key)
        self.inner.put(bucket, key, body, content_type, cache_control)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_given_another_process_published_last_then_only_the_changed_manifests_are_written_unless_it_failed(
        pipe: Pipeline) -> None:
    """A packager in a fresh process (nothing remembered) trusts PUB.written when the previous holder
    released its lease, so the unchanged masters are not rewritten; after a failed render (force release)
    it knows nothing, and writes every manifest."""
    pipe.channel(CH)
    for seq in range(2):
        pipe.push(CH, seq)
    pipe.pump()
    counting = CountingObjects(pipe.deps.objects)
    pipe.deps.objects = counting
    publish.reset_caches()  # another warm Lambda: it has not written anything itself
    pipe.push(CH, 2)
    pipe.pump()
    written = {k.split("/", 1)[1] for k in counting.puts}
    assert "master.m3u8" not in written and "360p/live.m3u8" in written and "manifest.mpd" in written
    assert pipe.listed(CH)[-1] == "r1/00000002.m4s"

    store = pipe.deps.store
    lease = store.acquire(CH, "crashed", pipe.clock().timestamp(), 60.0)
    assert lease is not None and lease.written  # a clean hand-over: what the origin holds is known
    store.force_release(CH, lease)
    again = store.acquire(CH, "next", pipe.clock().timestamp(), 60.0)
    assert again is not None and again.written == {}
    store.force_release(CH, again)
    publish.reset_caches()
    counting.puts.clear()
    pipe.push(CH, 3)
    pipe.pump()
    assert any(k.endswith("/master.m3u8") for k in counting.puts)


def test_an_expired_lease_hands_over_nothing_about_the_origin(pipe: Pipeline) -> None:
    pipe.channel(CH)
    pipe.push(CH, 0)
    pipe.pump()
    store, now = pipe.deps.store, pipe.clock().timestamp()
    held = store.acquire(CH, "killed mid-write", now, 5.0)
    assert held is not None and held.written
    assert store.acquire(CH, "too early", now + 1, 5.0) is None
    taken = store.acquire(CH, "after expiry", now + 10, 5.0, request=True)
    assert taken is not None and taken.written == {} and taken.work == held.work + 1


def test_a_steady_chunk_costs_the_pipeline_store_a_fixed_set_of_requests(pipe: Pipeline) -> None:
    """Ingest + transcode + inline package of one chunk on a warm process: each request has its reason
    (docs in /work/shared/notes/issue-16.md); a new read per chunk shows up here."""
    from collections import Counter

    calls: Counter[str] = Counter()
    client = pipe.table.meta.client  # the store's table: Powertools' idempotency records use their own client
    assert pipe.deps.store._t.meta.client is client
    client.meta.events.register("before-call.dynamodb.*", lambda model, **kw: calls.update([model.name]))
    pipe.channel(CH)
    for seq in range(2):
        pipe.push(CH, seq)
        pipe.clock.advance(2)
    pipe.pump()
    calls.clear()
    pipe.push(CH, 2)
    pipe.pump()
    assert pipe.listed(CH)[-1] == "r1/00000002.m4s"
    # GetItem: META by ingest, META by the packager. Query: the slot's neighbours, the ad breaks (splice
    # points), the unpublished SEG# tail, the ad breaks again (the render must see a break added meanwhile).
    # PutItem: SEG#. UpdateItem: arrival (META), queued, media claim, done, lease+work, commit, release;
    # a channel with input loss on writes one more: seen (META, before the probe: input loss must know the
    # chunk is in).
    assert dict(calls) == {"GetItem": 2, "Query": 4, "PutItem": 1, "UpdateItem": 7}
    calls.clear()
    pipe.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET input_loss_wait = :w",
                           ExpressionAttributeValues={":w": 3})
    for seq in (3, 4):  # chunk 3 makes the seen map on META (one write more, once)
        calls.clear()
        pipe.clock.advance(2)
        pipe.push(CH, seq)
        pipe.pump()
        assert pipe.listed(CH)[-1] == f"r1/{seq:08d}.m4s"
    assert dict(calls)["UpdateItem"] == 8


def test_given_the_upload_that_fixes_the_runs_clock_is_refused_then_the_runs_slate_is_still_rendered(
        pipe: Pipeline) -> None:
    """Chunk 0 arrives corrupt (recorded invalid, no place on the clock); the encoder re-sends it with other
    bytes: this upload fixes the run's clock, then is refused (the slot holds the first upload). Later chunks
    find the run made: if the refused upload had not asked for the slate, nobody would, and a missing chunk
    could never be slated: every playlist would stop at the hole for good."""
    pipe.channel(CH)
    pipe.clock.advance(2)
    assert pipe.push(CH, 0, body=b"CORRUPT" + b"\0" * 993) == ["invalid"]
    [refused] = pipe.push(CH, 0)
    assert refused.startswith("rejected"), refused
    pipe.pump()
    for seq in (1, 3, 4):  # 2 never comes
        pipe.clock.advance(2 if seq != 3 else 4)
        assert pipe.push(CH, seq) == ["accepted"]
        pipe.pump()
    pipe.clock.advance(2)
    publish.package(CH, pipe.deps)
    pipe.pump()
    item = pipe.chunk_item(CH, 2)
    assert item is not None and item["fill"] == "slate"
    assert pipe.listed(CH)[-3:] == uris(3, first=2)


def test_given_the_render_a_timer_woke_early_ends_past_the_deadline_then_the_slot_is_still_decided(
        pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer that woke the packager is spent: if its render (begun before the deadline) ends after it,
    the packager decides the slot itself rather than leaving it to an event that may never come."""
    pipe.deps.sleep = pipe.clock.advance
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    live(pipe, 2)
    pipe.clock.advance(4.4)  # slot 2 falls to input loss 0.6 s from now
    real, slow = publish._package, [True]

    def slow_render(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if slow:
            slow.clear()
            pipe.clock.advance(0.8)  # a loaded machine: this render ends 0.2 s past the deadline
        return out

    monkeypatch.setattr(publish, "_package", slow_render)
    publish.package_channels([PackageMessage(CH)], pipe.deps)
    assert pipe.listed(CH) == uris(3)


def test_given_a_timer_wakes_the_packager_early_for_a_slot_already_decided_then_it_sends_the_next_one(
        pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Soak seed 7, run 2: a timer (sent rounded down, so it comes back up to a second before its deadline)
    woke the packager after the slot it was for had been filled by its chunk; the next slot's deadline was
    further away, and the woken packager took the old deadline, still ahead, for a timer that would come
    back: nobody scheduled the next one. Missing chunk 5 then waited for the later-chunk rule (1.6 s more)
    instead of input loss."""
    pipe.deps.sleep = pipe.clock.advance
    timers: list[float] = []  # when each delayed packager message becomes visible, on the test's clock
    immediate = pipe.deps.queue.send

    def send(url: str, body: dict[str, Any], delay: int = 0) -> None:
        if delay:
            timers.append(pipe.clock.now.timestamp() + delay)
        else:
            immediate(url, body, delay)

    monkeypatch.setattr(pipe.deps.queue, "send", send)
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    for seq in range(3):  # each chunk comes on time and is transcoded 0.7 s later
        pipe.clock.now = T0 + timedelta(seconds=2 * seq + 2)
        assert pipe.push(CH, seq) == ["accepted"]
        pipe.clock.advance(0.7)
        pipe.pump()
    assert pipe.listed(CH) == uris(3)  # 3 never comes: lost at 6 + 2 + 3 = 11 s
    while timers and min(timers) <= (T0 + timedelta(seconds=20)).timestamp():
        due = min(timers)
        timers.remove(due)
        pipe.clock.now = max(pipe.clock.now, datetime.fromtimestamp(due, UTC))
        publish.package_channels([PackageMessage(CH)], pipe.deps)
    assert pipe.listed(CH)[:4] == uris(4) and pipe.chunk_item(CH, 3)["fill"] == "slate"


def test_given_a_timer_wakes_the_packager_less_than_a_second_early_then_it_waits_and_decides_the_slot(
        pipe: Pipeline) -> None:
    """SQS delays are whole seconds and timers are sent rounded down: a packager woken early waits out
    the rest, so a slate is listed when it is due, not up to a second after."""
    pipe.deps.sleep = pipe.clock.advance
    pipe.channel(CH, input_loss_wait=3.0)  # input loss on (off on the test stage): 1.5 segments
    live(pipe, 2)
    pipe.clock.advance(4.4)  # slot 2 falls to input loss 0.6 s from now
    [out] = publish.package_channels([PackageMessage(CH)], pipe.deps)
    assert pipe.listed(CH) == uris(3) and out.recheck_at > pipe.clock.now.timestamp()
