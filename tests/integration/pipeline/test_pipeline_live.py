"""Issue #5 end to end on the emulated stack: real deployed Lambdas, real ffmpeg.

`slipstream push` cuts a synthetic source into 2 s chunks and uploads them to the ingest bucket;
S3 notifications drive ingest -> transcode (SQS) -> package (SQS) -> origin. Then every rendition
playlist and the MPD must list every segment in order, parse with m3u8/mpegdash, and ffmpeg must
decode 20 s of the origin's master playlist without an error.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from chalicelib import records
from chalicelib.media.ladder import TEST_LADDER
from chalicelib.transcode.ffmpeg import find_binary
from slipstream_cli import push

pytestmark = pytest.mark.integration

SECONDS = 60  # of source: 30 chunks of 2 s, the acceptance run
CHUNKS = SECONDS // 2
RENDITIONS = TEST_LADDER.names


def start_channel(boto: Callable[[str], Any], table: str, cid: str) -> None:
    # The push ends and the channel stays RUNNING while the tests read exact listings: no input-loss slate
    # after the encoder's last chunk.
    rec = records.ChannelRecord(id=cid, state=records.RUNNING, ladder="test", started_at=records.iso(records.utcnow()),
                                input_loss_wait=-1.0)
    item = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()}
    boto("dynamodb")  # client warm-up; the resource below shares the session's endpoint
    import boto3

    boto3.resource("dynamodb").Table(table).put_item(Item=item)


def push_args(bucket: str, cid: str, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    push.add_parser(parser.add_subparsers())
    return parser.parse_args(["push", "--channel", cid, "--bucket", bucket, "--size", "320x180",
                              "--quiet", *extra, "testsrc"])


def origin_text(boto: Callable[[str], Any], bucket: str, key: str) -> str:
    try:
        return str(boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    except boto("s3").exceptions.NoSuchKey:
        return ""


def uris(text: str) -> list[str]:
    return [s.uri for s in m3u8.loads(text).segments] if text else []


@pytest.fixture(scope="module")
def live_channel(deployed: Any, boto: Callable[[str], Any], wait_for: Callable[..., Any]) -> dict[str, Any]:
    cid = "itest-live"
    start_channel(boto, deployed.table_name, cid)
    # In real time, as a live encoder delivers: the stack must keep up with 2 s chunks.
    assert push.run(push_args(deployed.ingest_bucket, cid, "--duration", str(SECONDS))) == 0
    want = [f"r1/{i:08d}.m4s" for i in range(CHUNKS)]

    def all_listed() -> bool:
        return all(uris(origin_text(boto, deployed.origin_bucket, f"{cid}/{r}/dvr.m3u8")) == want
                   for r in RENDITIONS)

    wait_for(all_listed, timeout=600, interval=2, what=f"all {CHUNKS} segments in every dvr playlist")
    return {"id": cid, "want": want}


def test_every_rendition_playlist_lists_every_segment_in_order(
        deployed: Any, boto: Callable[[str], Any], live_channel: dict[str, Any]) -> None:
    cid, want = live_channel["id"], live_channel["want"]
    for r in RENDITIONS:
        dvr = m3u8.loads(origin_text(boto, deployed.origin_bucket, f"{cid}/{r}/dvr.m3u8"))
        assert [s.uri for s in dvr.segments] == want and dvr.media_sequence == 0
        assert not any(s.gap_tag for s in dvr.segments)
        assert dvr.target_duration >= max(round(s.duration) for s in dvr.segments)
        live = m3u8.loads(origin_text(boto, deployed.origin_bucket, f"{cid}/{r}/live.m3u8"))
        tail = [s.uri for s in live.segments]
        assert tail == want[-len(tail):] and live.media_sequence == CHUNKS - len(tail)
        assert not live.is_endlist
    master = m3u8.loads(origin_text(boto, deployed.origin_bucket, f"{cid}/master.m3u8"))
    assert {p.uri for p in master.playlists} == {f"{v.name}/live.m3u8" for v in TEST_LADDER.video}
    assert all(p.stream_info.codecs for p in master.playlists)


def test_the_mpd_lists_every_segment(deployed: Any, boto: Callable[[str], Any],
                                     live_channel: dict[str, Any]) -> None:
    mpd = MPEGDASHParser.parse(origin_text(boto, deployed.origin_bucket, f"{live_channel['id']}/manifest.mpd"))
    assert mpd.type == "dynamic"
    for aset in mpd.periods[0].adaptation_sets:
        template = aset.segment_templates[0] if aset.segment_templates else aset.representations[0].segment_templates[0]
        timeline = template.segment_timelines[0].Ss
        count = sum(1 + (s.r or 0) for s in timeline)
        assert template.start_number == 0 and count == CHUNKS


@pytest.fixture
def origin_http(deployed: Any, boto: Callable[[str], Any]) -> Iterator[str]:
    """A plain HTTP view of the origin bucket (what CloudFront is in production): the emulator's S3
    refuses anonymous GETs, so the demo's own origin server reads objects with their headers."""
    from devtools.demo import S3ObjectSource, ServerConfig, serving

    config = ServerConfig(web_root=Path(__file__).parent, origin=S3ObjectSource(boto("s3"), deployed.origin_bucket),
                          api_base="")
    with serving(config) as base:
        yield f"{base}/origin"


def test_ffmpeg_decodes_20_seconds_of_the_origin_master_playlist(origin_http: str,
                                                                live_channel: dict[str, Any]) -> None:
    url = f"{origin_http}/{live_channel['id']}/master.m3u8"
    proc = subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-live_start_index", "0", "-i", url, "-t", "20",
         "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip() == "", proc.stderr[-2000:]


def test_origin_objects_carry_the_caching_rules(deployed: Any, boto: Callable[[str], Any],
                                                live_channel: dict[str, Any]) -> None:
    s3, cid = boto("s3"), live_channel["id"]
    seg = s3.head_object(Bucket=deployed.origin_bucket, Key=f"{cid}/360p/r1/00000003.m4s")
    assert seg["CacheControl"] == "public, max-age=1209600, immutable" and seg["ContentType"] == "video/mp4"
    pl = s3.head_object(Bucket=deployed.origin_bucket, Key=f"{cid}/audio/live.m3u8")
    assert pl["CacheControl"] == "public, max-age=1"


def test_a_duplicate_upload_and_a_corrupt_chunk_do_not_break_the_channel(
        deployed: Any, boto: Callable[[str], Any], wait_for: Callable[..., Any],
        live_channel: dict[str, Any]) -> None:
    """Re-upload chunk 3 (same bytes -> same ETag -> duplicate), then a corrupt chunk N and a good
    chunk N+1: N is published as slate (real media at its URL, in HLS and DASH alike) and N+1 after
    it; nothing else changes."""
    s3, cid, bucket = boto("s3"), live_channel["id"], deployed.ingest_bucket
    body = s3.get_object(Bucket=bucket, Key=f"{cid}/00000003.ts")["Body"].read()
    s3.put_object(Bucket=bucket, Key=f"{cid}/00000003.ts", Body=body)
    s3.put_object(Bucket=bucket, Key=f"{cid}/{CHUNKS:08d}.ts", Body=b"\x47" + b"\0" * 1000)
    assert push.run(push_args(bucket, cid, "--duration", "2", "--no-realtime",
                              "--start-seq", str(CHUNKS + 1))) == 0
    want = [*live_channel["want"], f"r1/{CHUNKS:08d}.m4s", f"r1/{CHUNKS + 1:08d}.m4s"]

    def listed() -> list[str]:
        pl = m3u8.loads(origin_text(boto, deployed.origin_bucket, f"{cid}/240p/dvr.m3u8"))
        return [("GAP:" if s.gap_tag else "") + s.uri for s in pl.segments]

    wait_for(lambda: listed() == want, timeout=300, interval=2, what="the slate and the chunk after it")
    slate = s3.head_object(Bucket=deployed.origin_bucket, Key=f"{cid}/240p/r1/{CHUNKS:08d}.m4s")
    assert slate["ContentLength"] > 1000 and slate["CacheControl"].endswith("immutable")
    import boto3

    meta = boto3.resource("dynamodb").Table(deployed.table_name).get_item(
        Key={"pk": f"CH#{cid}", "sk": "META"})["Item"]
    assert meta["state"] == records.RUNNING and int(meta["errors"]) == 1
    assert int(meta["last_seq"]) == CHUNKS + 1
