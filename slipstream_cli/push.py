"""`slipstream push --channel ID SOURCE`: be the encoder. Cut SOURCE into 2 s MPEG-TS chunks with
ffmpeg and upload each one the moment it closes.

SOURCE is a media file, a V4L2 device (/dev/video0) or `testsrc` (testsrc2 + a 440 Hz tone, with
a wall clock burned in when this ffmpeg has drawtext). Uploads go straight to the ingest bucket
(`--bucket`, boto3) or through presigned URLs from the control API (`--api` + `--api-key`).

How chunks are cut: ffmpeg's segment muxer with forced keyframes every chunk
(`-force_key_frames expr:gte(t,n_forced*D)`) so every chunk starts on an IDR, and
`-reset_timestamps 0` so chunk timestamps continue across chunks (the pipeline derives media time
from them). `-segment_list pipe:1` prints each chunk's name when it is closed, which is exactly
when it is complete and safe to upload.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

URL_BATCH = 60  # presigned URLs fetched per API call (2 minutes of 2 s chunks)


class PushError(Exception):
    """A problem the user can fix (missing ffmpeg, bad source, upload refused); printed, exit 2."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "push", help="cut a source into chunks with ffmpeg and upload them as a live channel",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("source", metavar="SOURCE", help="a media file, a device like /dev/video0, or 'testsrc'")
    p.add_argument("--channel", required=True, help="channel id (must be running to accept chunks)")
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--bucket", help="upload straight to this ingest bucket with boto3")
    dest.add_argument("--api", help="control API base URL; uploads go through presigned URLs")
    p.add_argument("--api-key", default=os.environ.get("SLIPSTREAM_API_KEY", ""), help="x-api-key for --api")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until the end)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="read the source at its native rate (-re), as a live encoder would")
    p.add_argument("--start-seq", type=int, default=0, help="sequence number of the first chunk")
    p.add_argument("--segment-time", type=float, default=2.0, help="chunk duration in seconds")
    p.add_argument("--size", default="640x360", help="testsrc picture size")
    p.add_argument("--fps", type=int, default=25, help="testsrc frame rate")
    p.add_argument("--bitrate", default="1500k", help="video bitrate of the chunks")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)
    return p


@dataclass
class Progress:
    """What the progress line shows: segments sent, upload bitrate, lag behind real time."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    bytes: int = 0
    media_seconds: float = 0.0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, size: int, seconds: float) -> None:
        with self.lock:
            self.sent += 1
            self.bytes += size
            self.media_seconds += seconds

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-6, (now if now is not None else time.monotonic()) - self.started)
        kbps = self.bytes * 8 / 1000 / max(self.media_seconds, 1e-6)
        lag = elapsed - self.media_seconds  # how far the uploaded media trails the wall clock
        extra = f" | {self.failed} failed" if self.failed else ""
        return f"sent {self.sent} segments | {kbps:,.0f} kbit/s | lag {lag:+.1f} s{extra}"


def has_filter(ffmpeg: str, name: str) -> bool:
    out = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def input_args(source: str, *, realtime: bool, size: str, fps: int, drawtext: bool) -> list[str]:
    re_flag = ["-re"] if realtime else []
    if source == "testsrc":
        video = f"testsrc2=size={size}:rate={fps}"
        if drawtext:
            # Burn in the wall clock: glass-to-glass latency is visible by comparing it to a clock.
            video += (",drawtext=text='%{localtime\\:%H\\\\\\:%M\\\\\\:%S} %{n}':x=10:y=10:fontsize=24:"
                      "fontcolor=white:box=1:boxcolor=black@0.6")
        return [*re_flag, "-f", "lavfi", "-i", video, *re_flag, "-f", "lavfi", "-i",
                "sine=frequency=440:sample_rate=48000"]
    if source.startswith("/dev/video"):
        # Webcams have no audio track; a silent one keeps the audio rendition of the ladder fed.
        return ["-f", "v4l2", "-i", source, "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
    if not Path(source).is_file():
        raise PushError(f"source {source!r} is not a file, a /dev/video* device or 'testsrc'")
    return [*re_flag, "-i", source]


def ffmpeg_command(ffmpeg: str, args: argparse.Namespace, out_dir: Path, drawtext: bool) -> list[str]:
    seg = float(args.segment_time)
    fps = int(args.fps)
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
           *input_args(args.source, realtime=args.realtime, size=args.size, fps=fps, drawtext=drawtext)]
    if args.duration:
        cmd += ["-t", f"{args.duration:g}"]
    two_inputs = args.source == "testsrc" or args.source.startswith("/dev/video")
    if two_inputs:
        cmd += ["-map", "0:v:0", "-map", "1:a:0"]
    else:
        cmd += ["-map", "0:v:0", "-map", "0:a:0?"]
    cmd += [
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-b:v", args.bitrate, "-maxrate", args.bitrate, "-bufsize", args.bitrate,
        "-force_key_frames", f"expr:gte(t,n_forced*{seg:g})", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
        "-f", "segment", "-segment_time", f"{seg:g}", "-segment_format", "mpegts",
        "-reset_timestamps", "0", "-segment_start_number", str(args.start_seq),
        "-segment_list", "pipe:1", "-segment_list_type", "flat",
        str(out_dir / "%08d.ts"),
    ]
    return cmd


def closed_chunks(proc: subprocess.Popen[str], out_dir: Path) -> Iterator[Path]:
    """Each line ffmpeg prints to the segment list is a chunk that has just been closed."""
    assert proc.stdout is not None
    for line in proc.stdout:
        name = line.strip()
        if name:
            yield out_dir / Path(name).name


class Uploader:
    """Where chunks go: the bucket (boto3) or presigned URLs from the control API."""

    def __init__(self, args: argparse.Namespace, opener: Callable[..., Any] = urllib.request.urlopen) -> None:
        self.channel = args.channel
        self.bucket = args.bucket
        # `slipstream --endpoint URL push ...`: the CLI's global API URL serves when --api is absent.
        self.api = (args.api or ("" if args.bucket else getattr(args, "endpoint", "")) or "").rstrip("/")
        self.api_key = args.api_key
        self._open = opener
        self._urls: dict[int, str] = {}
        self._lock = threading.Lock()
        self._s3: Any = None
        if not self.bucket and not self.api:
            raise PushError("say where chunks go: --bucket NAME (boto3) or --api URL --api-key KEY")

    def put(self, seq: int, path: Path) -> None:
        body = path.read_bytes()
        if self.bucket:
            if self._s3 is None:
                import boto3

                self._s3 = boto3.client("s3")
            self._s3.put_object(Bucket=self.bucket, Key=f"{self.channel}/{seq:08d}.ts", Body=body,
                                ContentType="video/mp2t")
            return
        url = self._url(seq)
        req = urllib.request.Request(url, data=body, method="PUT")
        with self._open(req, timeout=30) as resp:
            resp.read()

    def _url(self, seq: int) -> str:
        with self._lock:
            if seq not in self._urls:
                body = json.dumps({"first_seq": seq, "count": URL_BATCH, "extension": "ts"}).encode()
                req = urllib.request.Request(
                    f"{self.api}/channels/{self.channel}/ingest-urls", data=body, method="POST",
                    headers={"content-type": "application/json", "x-api-key": self.api_key})
                try:
                    with self._open(req, timeout=30) as resp:
                        doc = json.loads(resp.read())
                except urllib.error.HTTPError as e:
                    raise PushError(f"the API refused ingest URLs ({e.code}): {e.read()[:300]!r}") from e
                self._urls.update({int(u["seq"]): str(u["url"]) for u in doc["urls"]})
            return self._urls.pop(seq)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    try:
        return _run(args, out)
    except PushError as e:
        print(f"slipstream push: {e}", file=out)
        return 2
    except KeyboardInterrupt:
        print("\nslipstream push: interrupted", file=out)
        return 130


def _find_ffmpeg() -> str:
    try:
        from chalicelib.transcode.ffmpeg import find_binary

        return find_binary("ffmpeg")
    except ImportError:
        found = shutil.which("ffmpeg")
    except Exception as e:  # FFmpegNotFoundError
        raise PushError(f"ffmpeg is required: {e}") from e
    if not found:
        raise PushError("ffmpeg is required but was not found on PATH (apt-get install ffmpeg)")
    return found


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from chalicelib.errors import ValidationError
    from chalicelib.records import validate_id

    try:
        validate_id(args.channel)
    except ValidationError as e:
        raise PushError(str(e)) from e
    if args.start_seq < 0:
        raise PushError("--start-seq must be >= 0")
    uploader = Uploader(args)
    ffmpeg = _find_ffmpeg()
    drawtext = args.source == "testsrc" and has_filter(ffmpeg, "drawtext")
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="slipstream-push-") as tmp:
        out_dir = Path(tmp)
        cmd = ffmpeg_command(ffmpeg, args, out_dir, drawtext)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errors: list[str] = []
        # Uploads overlap with encoding; 4 in flight is plenty for one channel.
        with ThreadPoolExecutor(max_workers=4) as pool:
            pending: list[Future[None]] = []
            for path in closed_chunks(proc, out_dir):
                seq = int(path.stem)
                pending.append(pool.submit(_upload_one, uploader, seq, path, args.segment_time, progress, errors))
                if not args.quiet:
                    print(f"\r{progress.line()}", end="", file=out, flush=True)
            for f in pending:
                f.result()
        stderr = proc.stderr.read() if proc.stderr else ""
        code = proc.wait()
    if not args.quiet:
        print(f"\r{progress.line()}", file=out, flush=True)
    if code != 0:
        raise PushError(f"ffmpeg exited with {code}: {stderr.strip()[-500:]}")
    if errors:
        raise PushError(f"{len(errors)} upload(s) failed, first: {errors[0]}")
    return 0


def _upload_one(uploader: Uploader, seq: int, path: Path, seconds: float, progress: Progress,
                errors: list[str]) -> None:
    try:
        size = path.stat().st_size
        uploader.put(seq, path)
        progress.add(size, seconds)
    except PushError as e:
        errors.append(str(e))
        progress.failed += 1
    except Exception as e:  # keep pushing live: one lost chunk becomes a GAP downstream
        errors.append(f"chunk {seq}: {e}")
        progress.failed += 1
    finally:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slipstream")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
