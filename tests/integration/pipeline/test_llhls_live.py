"""Low-Latency HLS on the emulated stack: real deployed Lambdas, real ffmpeg, `slipstream push --part-time`.

The encoder pushes 0.5 s parts in real time; each is transcoded as it arrives; a client holds blocking
playlist requests against the LL origin's handler (what the `ll_origin` function runs) and gets every
part in turn; the full segments, made of the parts' fragments, decode as one seamless stream.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import m3u8
import pytest

from chalicelib import records
from chalicelib.media.ladder import TEST_LADDER
from chalicelib.pipeline.llorigin import Request
from chalicelib.transcode import boxes
from chalicelib.transcode.ffmpeg import find_binary
from devtools import updates
from slipstream_cli import push

pytestmark = pytest.mark.integration

SECONDS = 16  # of source: 8 segments of 4 parts
CID = "itest-ll"


def origin_bytes(boto: Callable[[str], Any], bucket: str, key: str) -> bytes:
    return bytes(boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def ll_channel(deployed: Any, boto: Callable[[str], Any], wait_for: Callable[..., Any]) -> dict[str, Any]:
    import boto3

    rec = records.ChannelRecord(id=CID, state=records.RUNNING, ladder="test", part_duration=0.5, run_no=1,
                                started_at=records.iso(records.utcnow()))
    boto("dynamodb")
    boto3.resource("dynamodb").Table(deployed.table_name).put_item(
        Item={k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()})
    from devtools.demo import ll_origin_handler

    env = {**os.environ, **deployed.env()}
    handle = ll_origin_handler(env)
    answers: list[tuple[float, str]] = []
    deltas: list[tuple[str, str]] = []  # (full answer, the delta update for the same directives)
    stop = threading.Event()

    def hold() -> None:
        msn: int | None = None
        part = 0
        while not stop.is_set():
            query = f"_HLS_msn={msn}&_HLS_part={part}" if msn is not None else ""
            resp = handle(Request.of(f"/{CID}/240p/ll.m3u8", query))
            if resp.status != 200:
                time.sleep(0.3)
                continue
            text = resp.text
            answers.append((time.time(), text))
            if "#EXT-X-ENDLIST" not in text:
                delta = handle(Request.of(f"/{CID}/240p/ll.m3u8", f"{query}&_HLS_skip=YES".lstrip("&")))
                if delta.status == 200 and "#EXT-X-SKIP:" in delta.text:
                    deltas.append((text, delta.text))
            report = [ln for ln in text.splitlines() if ln.startswith('#EXT-X-RENDITION-REPORT:URI="../360p')]
            if report:
                fields = dict(kv.split("=") for kv in report[0].split(",")[1:])
                msn, part = int(fields["LAST-MSN"]), int(fields["LAST-PART"]) + 1

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    s3 = boto("s3")

    def fetch(key: str) -> bytes | None:
        try:
            return origin_bytes(boto, deployed.origin_bucket, key)
        except s3.exceptions.NoSuchKey:
            return None

    # The regular playlists, DVR and the MPD of the LL channel, for players that do not do LL-HLS.
    watcher = updates.Watcher(fetch, CID, playlists=tuple(f"{r}/{w}.m3u8" for r in TEST_LADDER.names
                                                          for w in ("live", "dvr")))

    def watch() -> None:
        while not stop.wait(0.5):
            watcher.poll()

    watching = threading.Thread(target=watch, daemon=True)
    watching.start()
    parser = argparse.ArgumentParser()
    push.add_parser(parser.add_subparsers())
    args = parser.parse_args(["push", "--channel", CID, "--bucket", deployed.ingest_bucket, "--size", "320x180",
                              "--quiet", "--part-time", "0.5", "--duration", str(SECONDS), "testsrc"])
    assert push.run(args) == 0
    want = [f"r1/{i:08d}.m4s" for i in range(SECONDS // 2)]

    def listed() -> bool:
        try:
            text = origin_bytes(boto, deployed.origin_bucket, f"{CID}/360p/dvr.m3u8").decode()
        except Exception:
            return False
        return [s.uri for s in m3u8.loads(text).segments] == want

    wait_for(listed, timeout=300, interval=1, what=f"all {len(want)} segments in the dvr playlist")
    stop.set()
    holder.join(timeout=10)
    watching.join(timeout=30)
    watcher.poll()
    return {"want": want, "answers": answers, "deltas": deltas, "handle": handle, "watcher": watcher}


def test_a_blocking_client_receives_every_part_in_turn(ll_channel: dict[str, Any]) -> None:
    seen: list[str] = []
    for _, text in ll_channel["answers"]:
        for line in text.splitlines():
            if line.startswith("#EXT-X-PART:"):
                uri = line.split('URI="')[1].split('"')[0]
                if uri not in seen:
                    seen.append(uri)
    # Parts appear in order, none skipped: every blocking answer brought the part after the last one.
    parts = [u for u in seen if u.startswith("r1/")]
    keys = [(int(u[3:11]), int(u[12])) for u in parts]
    assert keys == sorted(keys) and len(keys) >= 16
    assert all(b in ((a[0], a[1] + 1), (a[0] + 1, 0)) for a, b in itertools.pairwise(keys))
    last = ll_channel["answers"][-1][1]
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES" in last and "#EXT-X-PRELOAD-HINT:TYPE=PART" in last


def test_every_ll_version_keeps_the_update_rules_and_every_delta_matches_its_full_playlist(
        ll_channel: dict[str, Any]) -> None:
    """RFC 8216bis 6.2.1/6.2.2 on the regular view, and the LL rules (parts only for the last 3 target
    durations, in whole segments; one PRELOAD-HINT naming the part that comes next; a RENDITION-REPORT for
    each other rendition; SERVER-CONTROL limits), each answer against the one before."""
    texts = [t for _, t in ll_channel["answers"]]
    found = [f"v{i}: {v}" for i, (a, b) in enumerate(itertools.pairwise([None, *texts]))
             for v in updates.ll_violations(a, b, ("../360p/ll.m3u8", "../audio/ll.m3u8"))]
    assert found == [] and len(texts) >= 16
    assert ll_channel["deltas"], "no delta update skipped anything"
    assert [v for full, delta in ll_channel["deltas"] for v in updates.delta_violations(full, delta)] == []


def test_the_regular_playlists_dvr_and_mpd_of_an_ll_channel_keep_their_update_rules(
        ll_channel: dict[str, Any]) -> None:
    w = ll_channel["watcher"]
    assert w.violations == [] and w.missing == []
    assert all(w.versions.get(f"{CID}/{r}/{x}", 0) >= 3 for r in TEST_LADDER.names for x in ("live.m3u8", "dvr.m3u8"))
    assert w.versions.get(f"{CID}/manifest.mpd", 0) >= 3


def test_parts_start_on_an_idr_and_the_full_segment_is_their_fragments(
        deployed: Any, boto: Callable[[str], Any], ll_channel: dict[str, Any]) -> None:
    bucket = deployed.origin_bucket
    for r in TEST_LADDER.names:
        whole = boxes.fragments_info(origin_bytes(boto, bucket, f"{CID}/{r}/r1/00000003.m4s"))
        parts = [boxes.fragments_info(origin_bytes(boto, bucket, f"{CID}/{r}/r1/00000003.{i}.m4s"))[0]
                 for i in range(4)]
        assert [(f.decode_time, f.duration) for f in whole] == [(f.decode_time, f.duration) for f in parts]
        assert all(f.starts_with_sync for f in parts)
        for a, b in itertools.pairwise(whole):
            assert a.decode_time + a.duration == b.decode_time
    video = [boxes.fragments_info(origin_bytes(boto, bucket, f"{CID}/360p/r1/00000003.{i}.m4s"))[0].samples
             for i in range(4)]
    assert video == [13, 12, 13, 12]


def test_the_segments_made_of_parts_decode_as_one_seamless_stream(
        deployed: Any, boto: Callable[[str], Any], ll_channel: dict[str, Any], tmp_path: Path) -> None:
    """init + segments 0..7 of each rendition: ffmpeg decodes them without an error, every frame there."""
    bucket = deployed.origin_bucket
    for r in ("360p", "audio"):
        data = origin_bytes(boto, bucket, f"{CID}/{r}/r1/init.mp4") + b"".join(
            origin_bytes(boto, bucket, f"{CID}/{r}/{u}") for u in ll_channel["want"])
        path = tmp_path / f"{r}.mp4"
        path.write_bytes(data)
        proc = subprocess.run([find_binary("ffmpeg"), "-v", "error", "-i", str(path), "-f", "null", "-"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr[-2000:]
    probe = subprocess.run([find_binary("ffmpeg").replace("ffmpeg", "ffprobe"), "-v", "error", "-count_frames",
                            "-show_entries", "stream=nb_read_frames", "-of", "json", str(tmp_path / "360p.mp4")],
                           capture_output=True, text=True, timeout=120, check=False)
    assert int(json.loads(probe.stdout)["streams"][0]["nb_read_frames"]) == SECONDS * 25


def test_bad_directives_are_400_and_unknown_renditions_404_at_once(ll_channel: dict[str, Any]) -> None:
    handle = ll_channel["handle"]
    assert handle(Request.of(f"/{CID}/360p/ll.m3u8", "_HLS_part=1")).status == 400
    assert handle(Request.of(f"/{CID}/360p/ll.m3u8", "_HLS_msn=-1")).status == 400
    assert handle(Request.of(f"/{CID}/4k/ll.m3u8")).status == 404
    assert handle(Request.of("/nope/360p/ll.m3u8")).status == 404
