"""A live source with in-band SCTE-35 for the integration tests: `slipstream push`'s own ffmpeg cut of
testsrc into 2 s MPEG-TS chunks, with cues written into chosen chunks by threefive (scte35_ts.inject),
uploaded to the ingest bucket at the pace a live encoder delivers them."""

from __future__ import annotations

import argparse
import io
import math
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from threefive import Stream

from chalicelib.transcode.ffmpeg import find_binary
from slipstream_cli import push
from tests.support.scte35_ts import inject

TICKS = 90_000


def make_chunks(out_dir: Path, seconds: float, size: str = "320x180", fps: int = 25) -> list[Path]:
    """`seconds` of testsrc as push would cut it (2 s chunks, IDR at each cut, continuous timestamps)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(source="testsrc", realtime=False, size=size, fps=fps, duration=seconds,
                              segment_time=2.0, bitrate="400k", start_seq=0)
    cmd = push.ffmpeg_command(find_binary("ffmpeg"), args, out_dir, drawtext=False)
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return sorted(out_dir.glob("*.ts"))


def first_pts(path: Path) -> int:
    """The chunk's first video PTS (90 kHz ticks), as threefive's Stream reads it from the PES headers."""
    data = path.read_bytes()
    stream = Stream(io.BytesIO(b""))
    for i in range(0, len(data), 188):
        stream.parse(data[i:i + 188])
        if stream.start:
            return int(next(iter(stream.start.values())))
    raise ValueError(f"{path} has no PTS")


def with_cues(chunks: Sequence[Path], plan: Mapping[int, Sequence[Any]], out_dir: Path,
              mangle: Callable[[int, bytes], bytes] | None = None) -> list[Path]:
    """Chunks with the cues of `plan` (seq -> [scte35.Cue]) injected at their first IDR; `mangle(seq, data)`
    may corrupt a chunk's bytes after injection."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for seq, src in enumerate(chunks):
        dst = out_dir / src.name
        cues = plan.get(seq, ())
        if cues:
            # SuperKabuki compares with the IDR's PTS in seconds rounded to 6 places: never ask for later than that.
            at = math.floor(first_pts(src) / TICKS * 1e6) / 1e6
            inject(src, dst, [(at, c.base64) for c in cues])
        else:
            dst.write_bytes(src.read_bytes())
        if mangle is not None:
            dst.write_bytes(mangle(seq, dst.read_bytes()))
        out.append(dst)
    return out


def upload_live(s3: Any, bucket: str, channel: str, chunks: Sequence[Path], pace: float = 2.0,
                first: int = 0, stop: threading.Event | None = None) -> None:
    """Upload chunk k at start + k * pace, as a live encoder closes them (labelled video/mp2t)."""
    t0 = time.monotonic()
    for k, path in enumerate(chunks):
        if stop is not None and stop.is_set():
            return
        delay = t0 + k * pace - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s3.put_object(Bucket=bucket, Key=f"{channel}/{first + k:08d}.ts", Body=path.read_bytes(),
                      ContentType="video/mp2t")
