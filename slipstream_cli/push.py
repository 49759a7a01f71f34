"""`slipstream push --channel ID SOURCE`: be the encoder. Cut SOURCE into 2 s MPEG-TS chunks with
ffmpeg and upload each one the moment it closes.

SOURCE is a media file, a V4L2 device (/dev/video0) or `testsrc` (testsrc2 + a 440 Hz tone, with
a wall clock burned in when this ffmpeg has drawtext). Uploads go straight to the ingest bucket
(`--bucket`, boto3) or through presigned URLs from the control API (`--api` + `--api-key`).

Each upload carries its media type (video/mp2t for .ts, video/mp4 for .mp4: S3 stores it, and
urllib's default form type is not what a media object is) and is retried within one segment
duration (transient 5xx, 429, timeouts, dropped connections) with exponential backoff; a chunk
that still fails is counted on the progress line and becomes a GAP or slate downstream, while
pushing goes on.

How chunks are cut: ffmpeg's segment muxer with forced keyframes every chunk
(`-force_key_frames expr:gte(t,n_forced*D)`) so every chunk starts on an IDR, and
`-reset_timestamps 0` so chunk timestamps continue across chunks (the pipeline derives media time
from them). `-segment_list pipe:1` prints each chunk's name when it is closed, which is exactly
when it is complete and safe to upload.

Low latency (`--part-time 0.5`, for a channel created with `low_latency`): every chunk is cut into parts
of that duration instead, each starting on a forced IDR, and each part is uploaded the moment it closes as
`{seq:08d}.{part}.ts` (parts 0 .. segment_time/part_time - 1 of segment `seq`): the pipeline transcodes
and publishes each part on arrival, so a player sees it half a second after the encoder cut it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
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
CONTENT_TYPES = {".ts": "video/mp2t", ".mp4": "video/mp4"}
# The API's channel id rule (chalicelib.records.ID_RE; a unit test keeps the two equal). Checked
# here too because `--bucket` uploads never meet the API: a bad id would only be rejected,
# silently for the pusher, by the ingest Lambda.
CHANNEL_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
FIRST_BACKOFF = 0.1  # seconds before the first retry; doubles each time, with jitter
MIN_ATTEMPT = 0.25  # an attempt needs at least this much of the retry window left


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
    p.add_argument("--part-time", type=float, default=0.0,
                   help="low latency: upload each chunk as parts of this many seconds (e.g. 0.5; 0: whole chunks)")
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
    retries: int = 0  # attempts beyond each upload's first
    last_failure: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, size: int, seconds: float) -> None:
        with self.lock:
            self.sent += 1
            self.bytes += size
            self.media_seconds += seconds

    def retry(self) -> None:
        with self.lock:
            self.retries += 1

    def fail(self, reason: str) -> None:
        with self.lock:
            self.failed += 1
            self.last_failure = reason

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-6, (now if now is not None else time.monotonic()) - self.started)
        kbps = self.bytes * 8 / 1000 / max(self.media_seconds, 1e-6)
        lag = elapsed - self.media_seconds  # how far the uploaded media trails the wall clock
        extra = f" | {self.retries} retries" if self.retries else ""
        if self.failed:
            extra += f" | {self.failed} failed (last: {self.last_failure[:80]})"
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


def parts_per_chunk(args: argparse.Namespace) -> int:
    """How many parts a chunk is cut into (0: whole chunks). The part must divide the chunk evenly."""
    part = float(getattr(args, "part_time", 0.0) or 0.0)
    if not part:
        return 0
    k = float(args.segment_time) / part
    if part < 0.2 or abs(k - round(k)) > 1e-6 or not 2 <= round(k) <= 10:
        raise PushError(f"--part-time {part:g} must divide --segment-time {args.segment_time:g} into 2 to 10 "
                        "equal parts of at least 0.2 s")
    return round(k)


def ffmpeg_command(ffmpeg: str, args: argparse.Namespace, out_dir: Path, drawtext: bool) -> list[str]:
    parts = parts_per_chunk(args)
    # With parts, ffmpeg cuts every part (an IDR each) and numbers them; part n is part n % k of chunk n // k.
    seg = float(args.part_time) if parts else float(args.segment_time)
    first = args.start_seq * parts if parts else args.start_seq
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
        "-reset_timestamps", "0", "-segment_start_number", str(first),
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


def content_type(path: Path) -> str:
    try:
        return CONTENT_TYPES[path.suffix]
    except KeyError:
        raise PushError(f"cannot upload {path.name}: only {', '.join(sorted(CONTENT_TYPES))} chunks") from None


def _transient(e: BaseException) -> bool:
    """Could the next attempt succeed? 5xx, 408, 429, timeouts and dropped connections: yes."""
    if isinstance(e, urllib.error.HTTPError):
        return e.code >= 500 or e.code in (408, 429)
    # Refused, reset or timed out (urllib wraps some of these in URLError), or a broken response.
    if isinstance(e, urllib.error.URLError | TimeoutError | ConnectionError | http.client.HTTPException):
        return True
    response = getattr(e, "response", None)  # botocore's ClientError (--bucket) carries the status
    if isinstance(response, dict):
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or status in (408, 429)
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:
        return False
    return isinstance(e, BotoConnectionError | HTTPClientError)  # endpoint down, timeouts, closed


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"{e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class Uploader:
    """Where chunks go: the bucket (boto3) or presigned URLs from the control API.

    `put` retries transient failures until `window` seconds after its first attempt (one segment
    duration: a chunk later than that is no use to a live playlist), sleeping 0.1, 0.2, 0.4 ... s
    with jitter in between; each attempt's socket timeout is what is left of the window."""

    def __init__(self, args: argparse.Namespace, opener: Callable[..., Any] = urllib.request.urlopen, *,
                 window: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[int, str], None] | None = None) -> None:
        self.channel = args.channel
        self.bucket = args.bucket
        # `slipstream --endpoint URL push ...`: the CLI's global API URL serves when --api is absent.
        self.api = (args.api or ("" if args.bucket else getattr(args, "endpoint", "")) or "").rstrip("/")
        self.api_key = args.api_key
        self.parts = parts_per_chunk(args) if hasattr(args, "segment_time") else 0
        # A part later than two part durations is slated downstream anyway: stop retrying then.
        default = 2 * float(args.part_time) if self.parts else float(getattr(args, "segment_time", 2.0))
        self.window = float(window if window is not None else default)
        self._open = opener
        self._clock, self._sleep = clock, sleep
        self._on_retry = on_retry or (lambda seq, reason: None)
        self._urls: dict[tuple[int, int, str], str] = {}
        self._lock = threading.Lock()
        self._s3: Any = None
        if not self.bucket and not self.api:
            raise PushError("say where chunks go: --bucket NAME (boto3) or --api URL --api-key KEY")

    def put(self, seq: int, path: Path, part: int = -1) -> int:
        """Upload one chunk (or part `part` of chunk `seq`); returns the number of attempts it took. Raises
        PushError when it could not be sent within the window (or was refused for good)."""
        body = path.read_bytes()
        kind = content_type(path)
        started = self._clock()
        deadline = started + self.window
        url = ""
        attempt, backoff = 0, FIRST_BACKOFF
        while True:
            attempt += 1
            timeout = max(MIN_ATTEMPT, deadline - self._clock())
            try:
                if self.bucket:
                    self._put_s3(seq, path.suffix, body, kind, part)
                else:
                    url = url or self._url(seq, path.suffix, timeout, part)  # an API hiccup is retried too
                    self._put_url(url, body, kind, timeout)
                return attempt
            except PushError:
                raise
            except Exception as e:
                reason = f"chunk {seq}: {_reason(e)}"
                if not _transient(e):
                    raise PushError(f"{reason} (not retried)") from e
                pause = random.uniform(backoff / 2, backoff)
                if self._clock() + pause + MIN_ATTEMPT > deadline:
                    raise PushError(f"{reason} (gave up after {attempt} attempt(s) in "
                                    f"{self._clock() - started:.1f} s)") from e
                self._on_retry(seq, reason)
                self._sleep(pause)
                backoff *= 2

    def _put_url(self, url: str, body: bytes, kind: str, timeout: float) -> None:
        # Content-Length comes from the body; without an explicit type urllib sends
        # application/x-www-form-urlencoded, which S3 would store as the object's type.
        req = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": kind})
        with self._open(req, timeout=timeout) as resp:
            resp.read()

    def _put_s3(self, seq: int, suffix: str, body: bytes, kind: str, part: int = -1) -> None:
        with self._lock:  # boto3's default session is not safe to create clients from many threads
            if self._s3 is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError:
                    raise PushError("--bucket needs boto3: pip install 'slipstream[aws]'") from None
                # One attempt per call and short timeouts: the retry window above is the policy.
                self._s3 = boto3.client("s3", config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                                            connect_timeout=max(1.0, self.window),
                                                            read_timeout=max(1.0, self.window)))
        name = f"{seq:08d}.{part}" if part >= 0 else f"{seq:08d}"
        self._s3.put_object(Bucket=self.bucket, Key=f"{self.channel}/{name}{suffix}", Body=body, ContentType=kind)

    def _url(self, seq: int, suffix: str, timeout: float = 30, part: int = -1) -> str:
        """The presigned PUT URL for one chunk (or part), fetched URL_BATCH chunks at a time. A refusal
        (4xx) is a PushError; a 5xx or an unreachable API raises as is, for put() to retry."""
        ext = suffix.lstrip(".")
        with self._lock:
            if (seq, part, ext) not in self._urls:
                request: dict[str, Any] = {"first_seq": seq, "count": URL_BATCH, "extension": ext}
                if part >= 0:
                    request["parts"] = self.parts
                body = json.dumps(request).encode()
                req = urllib.request.Request(
                    f"{self.api}/channels/{self.channel}/ingest-urls", data=body, method="POST",
                    headers={"content-type": "application/json", "x-api-key": self.api_key})
                try:
                    with self._open(req, timeout=timeout) as resp:
                        doc = json.loads(resp.read())
                except urllib.error.HTTPError as e:
                    if _transient(e):
                        raise
                    raise PushError(f"the API refused ingest URLs ({e.code}): {e.read()[:300]!r}") from e
                self._urls.update({(int(u["seq"]), int(u.get("part", -1)), ext): str(u["url"]) for u in doc["urls"]})
            return self._urls.pop((seq, part, ext))


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
    """$FFMPEG_PATH, else PATH, else the static build of `pip install 'slipstream[ffmpeg]'`."""
    override = os.environ.get("FFMPEG_PATH", "")
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise PushError(f"ffmpeg is required: FFMPEG_PATH={override} is not an executable file")
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        raise PushError("ffmpeg is required but was not found on PATH "
                        "(apt-get install ffmpeg, or pip install 'slipstream[ffmpeg]')") from None


def _run(args: argparse.Namespace, out: TextIO) -> int:
    if not CHANNEL_ID.fullmatch(args.channel):
        raise PushError(f"invalid channel id {args.channel!r}: use 1-63 lower-case letters, digits and '-', "
                        "starting and ending with a letter or digit")
    if args.start_seq < 0:
        raise PushError("--start-seq must be >= 0")
    parts_per_chunk(args)  # a bad --part-time fails before ffmpeg starts
    progress = Progress()
    uploader = Uploader(args, on_retry=lambda seq, reason: progress.retry())
    ffmpeg = _find_ffmpeg()
    drawtext = args.source == "testsrc" and has_filter(ffmpeg, "drawtext")
    with tempfile.TemporaryDirectory(prefix="slipstream-push-") as tmp:
        out_dir = Path(tmp)
        cmd = ffmpeg_command(ffmpeg, args, out_dir, drawtext)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errors: list[str] = []
        # Uploads overlap with encoding; 4 in flight is plenty for one channel.
        with ThreadPoolExecutor(max_workers=4) as pool:
            pending: list[Future[None]] = []
            parts = parts_per_chunk(args)
            for path in closed_chunks(proc, out_dir):
                n = int(path.stem)
                seq, part = divmod(n, parts) if parts else (n, -1)
                seconds = args.part_time if parts else args.segment_time
                pending.append(pool.submit(_upload_one, uploader, seq, path, seconds, progress, errors, part))
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
                errors: list[str], part: int = -1) -> None:
    try:
        size = path.stat().st_size
        uploader.put(seq, path, part)
        progress.add(size, seconds)
    except PushError as e:
        errors.append(str(e))
        progress.fail(str(e))
    except Exception as e:  # keep pushing live: one lost chunk becomes a GAP downstream
        errors.append(f"chunk {seq}: {e}")
        progress.fail(f"chunk {seq}: {e}")
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
