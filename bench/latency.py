"""Pipeline latency: upload complete -> segment listed in *every* playlist, for 2 s chunks.

Runs on the emulated stack (devtools.localaws: real Lambdas, real ffmpeg, SQS, DynamoDB, S3) or
on any deployed stack reachable through AWS_ENDPOINT_URL (`--use-env`):
1. cuts a synthetic source (testsrc2 + sine, 320x180) into N chunks with the push helper's
   ffmpeg command, ahead of time so encoding does not compete with the pipeline for CPU;
2. uploads one chunk every chunk-duration, like a live encoder, noting when each PUT returned;
3. polls the origin (every rendition's live.m3u8 and the MPD) every 50 ms and notes when each
   seq is listed in all of them.
Reports p50/p95/max of (listed - uploaded) and the same as a multiple of the chunk duration
(the figure that matters: a live player sits ~3 chunks behind the edge, so pipeline latency
adds directly to glass-to-glass delay). The first chunk (cold Lambdas) is reported apart.

Usage: python -m bench latency   or   python -m bench.latency [--chunks 15] [--use-env]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported number was observed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def make_chunks(out_dir: Path, chunks: int, segment_time: float) -> list[Path]:
    import subprocess

    from chalicelib.transcode.ffmpeg import find_binary
    from slipstream_cli import push

    parser = argparse.ArgumentParser()
    push.add_parser(parser.add_subparsers())
    args = parser.parse_args(["push", "--channel", "bench", "--bucket", "x", "--no-realtime", "--size", "320x180",
                              "--duration", str(chunks * segment_time), "--segment-time", str(segment_time),
                              "testsrc"])
    cmd = push.ffmpeg_command(find_binary("ffmpeg"), args, out_dir, drawtext=False)
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return sorted(out_dir.glob("*.ts"))[:chunks]


def _mpd_count(text: str) -> int:
    """Segments in the first SegmentTimeline of the MPD, counted from its startNumber."""
    m = re.search(r'startNumber="(\d+)"', text)
    timeline = re.search(r"<SegmentTimeline>(.*?)</SegmentTimeline>", text, re.S)
    if not m or not timeline:
        return 0
    n = 0
    for tag in re.findall(r"<S\b[^>]*>", timeline.group(1)):
        r = re.search(r'\br="(\d+)"', tag)
        n += 1 + (int(r.group(1)) if r else 0)
    return int(m.group(1)) + n


class Poller(threading.Thread):
    def __init__(self, s3: Any, bucket: str, channel: str, renditions: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.s3, self.bucket, self.channel, self.renditions = s3, bucket, channel, renditions
        self.listed_at: dict[int, float] = {}
        self.stop = threading.Event()

    def _upto(self) -> int:
        """Highest seq listed everywhere (+1), i.e. how many leading segments all playlists have."""
        counts = []
        for r in self.renditions:
            try:
                text = self.s3.get_object(Bucket=self.bucket, Key=f"{self.channel}/{r}/live.m3u8")["Body"].read()
            except Exception:
                return 0
            uris = [ln for ln in text.decode().splitlines() if ln and not ln.startswith("#")]
            # URIs carry the run folder since runs exist: r1/00000012.m4s
            counts.append(int(uris[-1].rsplit("/", 1)[-1].split(".")[0]) + 1 if uris else 0)
        try:
            mpd = self.s3.get_object(Bucket=self.bucket, Key=f"{self.channel}/manifest.mpd")["Body"].read()
            counts.append(_mpd_count(mpd.decode()))
        except Exception:
            return 0
        return min(counts)

    def run(self) -> None:
        while not self.stop.is_set():
            upto = self._upto()
            now = time.monotonic()
            for seq in range(upto):
                self.listed_at.setdefault(seq, now)
            time.sleep(0.05)


def measure(chunks: int, segment_time: float, channel: str) -> dict[str, Any]:
    import boto3

    from chalicelib import records
    from chalicelib.media.ladder import LADDERS

    table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
    rec = records.ChannelRecord(id=channel, state=records.RUNNING, ladder="test", segment_duration=segment_time,
                                started_at=records.iso(records.utcnow()))
    table.put_item(Item={k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()})
    s3 = boto3.client("s3")
    poller = Poller(s3, os.environ["ORIGIN_BUCKET"], channel, LADDERS["test"].names)
    uploaded: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        files = make_chunks(Path(tmp), chunks, segment_time)
        poller.start()
        t0 = time.monotonic()
        for i, f in enumerate(files):
            time.sleep(max(0.0, t0 + (i + 1) * segment_time - time.monotonic()))  # chunk closes
            s3.put_object(Bucket=os.environ["INGEST_BUCKET"], Key=f"{channel}/{i:08d}.ts", Body=f.read_bytes())
            uploaded[i] = time.monotonic()
        deadline = time.monotonic() + 120
        while len(poller.listed_at) < len(files) and time.monotonic() < deadline:
            time.sleep(0.2)
        poller.stop.set()
    lat = {s: poller.listed_at[s] - uploaded[s] for s in uploaded if s in poller.listed_at}
    warm = [v for s, v in lat.items() if s > 0]
    return {
        "chunks": len(uploaded), "listed": len(lat), "segment_time": segment_time,
        "first_chunk_s": round(lat.get(0, float("nan")), 3),
        "p50_s": round(percentile(warm, 50), 3), "p95_s": round(percentile(warm, 95), 3),
        "max_s": round(max(warm), 3) if warm else float("nan"),
        "mean_s": round(statistics.fmean(warm), 3) if warm else float("nan"),
        "p50_x_chunk": round(percentile(warm, 50) / segment_time, 2),
        "p95_x_chunk": round(percentile(warm, 95) / segment_time, 2),
        "per_seq_s": {s: round(v, 3) for s, v in sorted(lat.items())},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--chunks", type=int, default=15)
    ap.add_argument("--segment-time", type=float, default=2.0)
    ap.add_argument("--use-env", action="store_true", help="use the stack in AWS_ENDPOINT_URL/TABLE_NAME/... as is")
    ap.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = ap.parse_args(argv if argv is not None else [])
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    server = None
    saved = dict(os.environ)
    try:
        if not args.use_env:
            from devtools.localaws import LocalAWS
            from devtools.localaws.deploy import deploy

            server = LocalAWS(state_dir=tempfile.mkdtemp(prefix="bench-localaws-"))
            server.start()
            os.environ.update(server.env())
            dep = deploy(REPO, stage="local", endpoint=server.endpoint)
            os.environ.update(dep.env())
        result = measure(args.chunks, args.segment_time, f"bench-{int(time.time()) % 100000}")
    finally:
        if server is not None:
            server.stop()
        os.environ.clear()
        os.environ.update(saved)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"latency upload -> listed in all playlists ({result['listed']}/{result['chunks']} chunks of "
              f"{result['segment_time']:g} s, first chunk excluded: {result['first_chunk_s']} s cold)")
        print(f"  p50 {result['p50_s']:.2f} s = {result['p50_x_chunk']:.2f} x chunk | "
              f"p95 {result['p95_s']:.2f} s = {result['p95_x_chunk']:.2f} x chunk | max {result['max_s']:.2f} s")
        print("  per seq: " + " ".join(f"{s}:{v:.1f}" for s, v in result["per_seq_s"].items()))
    return 0 if result["listed"] == result["chunks"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
