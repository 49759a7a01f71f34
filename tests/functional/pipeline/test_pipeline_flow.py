"""The pipeline end to end on moto: ingest -> transcode -> package -> origin, with the failure cases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from pipeline_harness import T0, FakeCdn, Pipeline

from chalicelib import records
from chalicelib.media.timeline import Timeline
from chalicelib.pipeline import publish
from chalicelib.pipeline.replay import replay_dlq

CH = "news"


def live(pipe: Pipeline, n: int, cid: str = CH) -> None:
    """n chunks arrive 2 s apart and are processed as they come."""
    for seq in range(n):
        pipe.clock.advance(2)
        assert pipe.push(cid, seq) == ["accepted"]
        pipe.pump()


def test_given_a_running_channel_then_chunks_are_published_in_order_with_caching_headers(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 3)
    for r in ("360p", "240p", "audio"):
        assert pipe.listed(CH, r) == ["00000000.m4s", "00000001.m4s", "00000002.m4s"]
        seg = pipe.head(f"{CH}/{r}/00000001.m4s")
        assert seg["CacheControl"] == "public, max-age=1209600, immutable"
        assert seg["ContentType"] == ("audio/mp4" if r == "audio" else "video/mp4")
        assert pipe.head(f"{CH}/{r}/init.mp4")["ContentType"] == "video/mp4"
    playlist = pipe.head(f"{CH}/360p/live.m3u8")
    assert playlist["CacheControl"] == "public, max-age=1"
    assert playlist["ContentType"] == "application/vnd.apple.mpegurl"
    assert "360p/live.m3u8" in pipe.origin(f"{CH}/master.m3u8")
    mpd = pipe.origin(f"{CH}/manifest.mpd")
    assert 'type="dynamic"' in mpd and pipe.head(f"{CH}/manifest.mpd")["ContentType"] == "application/dash+xml"
    # tfdt continuity: the transcoder was asked for media time = source clock - base
    assert [j.media_start for j in pipe.transcoder.jobs] == [0.0, 2.0, 4.0]
    meta = pipe.meta(CH)
    assert meta.last_seq == 2 and meta.last_segment_at


def test_given_a_duplicate_event_then_one_segment_and_one_job(pipe: Pipeline) -> None:
    pipe.channel(CH)
    event = pipe.upload(CH, 0)
    assert pipe.ingest(event) == ["accepted"]
    assert pipe.ingest(event) == ["accepted"]  # Powertools Idempotency replays the stored result
    pipe.deps.extra.pop("idempotency")  # ... and without it (record expired) the SEG# guard holds
    assert pipe.ingest(event) == ["duplicate"]
    assert pipe.queue_depth("transcode") == 1
    assert len(pipe.receive("transcode")) == 1


def test_given_the_same_file_pushed_in_a_new_run_then_it_is_ingested_not_replayed(pipe: Pipeline) -> None:
    """Stop, start, push the same file again: identical ETags, but a new run, so a new chunk."""
    pipe.channel(CH)
    event = pipe.upload(CH, 0)
    assert pipe.ingest(event) == ["accepted"]
    pipe.receive("transcode")  # the first run's job was taken
    pipe.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET started_at = :t",
                           ExpressionAttributeValues={":t": records.iso(T0 + timedelta(hours=1))})
    assert pipe.ingest(event) == ["accepted"]
    assert pipe.queue_depth("transcode") == 1


def test_given_a_second_upload_with_another_etag_then_it_is_rejected_as_a_conflict(pipe: Pipeline) -> None:
    pipe.channel(CH)
    assert pipe.push(CH, 0) == ["accepted"]
    [out] = pipe.push(CH, 0, start=99.0)
    assert out.startswith("rejected") and "another ETag" in out
    assert pipe.meta(CH).errors == 1 and pipe.queue_depth("transcode") == 1


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


def test_given_chunks_finish_out_of_order_then_the_later_one_waits(pipe: Pipeline) -> None:
    pipe.channel(CH)
    for seq in range(3):
        pipe.clock.advance(2)
        pipe.push(CH, seq)
    pipe.pump_transcode(only=lambda m: m.seq != 1)  # 0 and 2 finish, 1 is slow
    pipe.pump_package()
    assert pipe.listed(CH) == ["00000000.m4s"]
    pipe.clock.advance(1)
    pipe.pump()  # 1 finishes within the deadline
    assert pipe.listed(CH) == ["00000000.m4s", "00000001.m4s", "00000002.m4s"]


def test_given_a_missing_predecessor_past_the_deadline_then_it_is_a_gap(pipe: Pipeline) -> None:
    pipe.channel(CH)
    for seq in (0, 2, 3):  # chunk 1 is lost by the encoder
        pipe.clock.advance(2)
        pipe.push(CH, seq)
        pipe.pump()
    assert pipe.listed(CH) == ["00000000.m4s"]
    # The packager scheduled its own re-run for when 1 turns into a GAP (nothing else may come).
    assert pipe.queue_depth("package", "ApproximateNumberOfMessagesDelayed") >= 1
    pipe.clock.advance(10)
    publish.package(CH, pipe.deps)  # the delayed message arriving
    assert pipe.listed(CH) == ["00000000.m4s", "GAP:00000001.m4s", "00000002.m4s", "00000003.m4s"]
    assert all(pipe.listed(CH, r) == pipe.listed(CH) for r in ("240p", "audio"))
    assert "#EXT-X-GAP" in pipe.origin(f"{CH}/240p/dvr.m3u8")


def test_given_a_corrupt_chunk_then_it_is_a_gap_and_the_channel_keeps_running(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 1)
    pipe.clock.advance(2)
    assert pipe.push(CH, 1, body=b"CORRUPT" + b"\0" * 993) == ["invalid"]
    pipe.pump()
    pipe.clock.advance(2)
    pipe.push(CH, 2)
    pipe.pump()
    assert pipe.listed(CH) == ["00000000.m4s", "GAP:00000001.m4s", "00000002.m4s"]
    item = pipe.chunk_item(CH, 1)
    assert item is not None and item["status"] == "invalid" and "188-byte" in item["error"]
    meta = pipe.meta(CH)
    assert meta.state == records.RUNNING and meta.errors == 1 and "chunk 1" in meta.error


def test_given_a_chunk_too_long_for_the_target_duration_then_it_is_a_gap_with_the_fix_named(
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
    assert pipe.listed(CH) == ["00000000.m4s", "GAP:00000001.m4s", "00000002.m4s"]
    item = pipe.chunk_item(CH, 1)
    assert item is not None and "4.00 s" in item["error"] and "every 2 s" in item["error"]


def test_given_a_transcode_crash_then_the_retry_publishes_it(pipe: Pipeline) -> None:
    pipe.channel(CH)
    pipe.transcoder.crashes[0] = 1
    pipe.clock.advance(2)
    pipe.push(CH, 0)
    first = pipe.pump_transcode()
    assert first[0].startswith("failed") and first[-1] == "done"
    pipe.pump_package()
    assert pipe.listed(CH) == ["00000000.m4s"]
    assert pipe.queue_depth("transcode-dlq") == 0


def test_given_a_job_fails_three_times_then_it_is_dead_lettered_and_replay_recovers_it(pipe: Pipeline) -> None:
    pipe.channel(CH)
    pipe.transcoder.crashes[0] = 3
    pipe.clock.advance(2)
    pipe.push(CH, 0)
    results = pipe.pump_transcode()
    assert results and all(r.startswith("failed") for r in results) and len(results) == 3
    assert pipe.queue_depth("transcode-dlq") == 1
    assert replay_dlq(pipe.sqs, pipe.queues["transcode"]) == 1
    assert pipe.queue_depth("transcode-dlq") == 0
    assert pipe.pump_transcode() == ["done"]
    pipe.pump_package()
    assert pipe.listed(CH) == ["00000000.m4s"]


def test_given_rendition_fanout_then_one_job_per_rendition(pipe: Pipeline) -> None:
    pipe.channel(CH, fanout="rendition")
    pipe.clock.advance(2)
    pipe.push(CH, 0)
    jobs = [json.loads(m["Body"])["renditions"] for m in pipe.receive("transcode")]
    assert sorted(j[0] for j in jobs) == ["240p", "360p", "audio"]


def test_given_a_stop_then_finalize_ends_every_playlist_and_late_work_does_not_reopen_it(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 2)
    publish.package(CH, pipe.deps, reasons=["stop"], final=True, force=True)
    assert pipe.origin(f"{CH}/360p/live.m3u8").rstrip().endswith("#EXT-X-ENDLIST")
    assert 'type="static"' in pipe.origin(f"{CH}/manifest.mpd")
    publish.package(CH, pipe.deps)  # e.g. a delayed re-check message
    assert "#EXT-X-ENDLIST" in pipe.origin(f"{CH}/360p/dvr.m3u8")


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
    assert pipe.listed(CH) == ["00000000.m4s", "00000001.m4s", "00000002.m4s"]


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
    assert pipe.listed(CH) == [f"{i:08d}.m4s" for i in range(8)]
    pub = pipe.table.get_item(Key={"pk": f"CH#{CH}", "sk": "PUB"})["Item"]
    assert "lease_owner" not in pub and int(pub["published_seq"]) == 7


def test_given_a_stop_while_another_packager_renders_then_its_next_round_finalizes(pipe: Pipeline) -> None:
    pipe.channel(CH)
    live(pipe, 2)
    real_render = pipe.deps.render
    outcomes: list[str] = []

    def render_with_stop(tl: Timeline, now: datetime) -> dict[str, str]:
        if not outcomes:
            outcomes.append(publish.package(CH, pipe.deps, reasons=["stop"], final=True, force=True).status)
        return real_render(tl, now)

    pipe.deps.render = render_with_stop
    publish.package(CH, pipe.deps, force=True)
    assert outcomes == ["deferred"]
    assert pipe.origin(f"{CH}/360p/live.m3u8").rstrip().endswith("#EXT-X-ENDLIST")
    assert 'type="static"' in pipe.origin(f"{CH}/manifest.mpd")


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
