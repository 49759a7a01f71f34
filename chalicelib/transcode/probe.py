"""Source-chunk validation before any encode, with ffmpeg alone.

Why ffmpeg and not ffprobe: the Lambda layer ships only the static ffmpeg (a static ffprobe is
another ~170 MB and both together break the 250 MB unzipped layer limit, see layers/ffmpeg).
So the same code path runs locally and in Lambda, and it is one process (a process start is
a real share of a 2 s chunk's cost):

``ffmpeg -max_pixels N -t LIMIT -copyts -i SRC -map 0:v:0 -map 0:a:0? -vf showinfo -f null -``
prints the header (container, duration, stream lines) and then decodes everything, with
``showinfo`` giving the first video pts and the decoded frame count. The header is checked first
(container, video present, resolution, duration) so the error names the real reason; -max_pixels
and -t keep an absurd header from costing a huge decode. Any decoder/demuxer error line means
the chunk is corrupt or truncated. For MPEG-TS a size that is not a whole number of 188-byte
packets is a cut-off upload.

``decode=False`` (what a transcode job uses, after the ingest ran the full check) stream-copies
the video packets to ``framecrc`` instead: same header checks, packet timestamps and count,
demuxer errors, no decode; the job's own ffmpeg then reports any decode error.

Every failure is an InvalidMediaError whose message is one line a channel operator can act on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InvalidMediaError
from .ffmpeg import find_binary, run_process

MAX_DURATION = 60.0
MAX_PIXELS = 4096 * 2304
TS_PACKET = 188
# ffmpeg's demuxer names for the containers the ingest accepts.
_CONTAINERS = {"mpegts": "mpegts", "mov,mp4,m4a,3gp,3g2,mj2": "mp4"}

_INPUT_RE = re.compile(r"^Input #0, ([^,]+(?:,[^ ,]+)*), from ", re.M)
_DURATION_RE = re.compile(r"^\s+Duration: (N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))(?:, start: (-?[\d.]+))?", re.M)
_STREAM_RE = re.compile(r"^\s+Stream #0:(\d+)[^:]*: (Video|Audio|Data|Subtitle|Attachment): (.*)$", re.M)
_SIZE_RE = re.compile(r"(?:^|[ ,])(\d{1,6})x(\d{1,6})(?=[ ,]|$)")
_FPS_RE = re.compile(r"([\d.]+)(k?) fps")
_HZ_RE = re.compile(r"(\d+) Hz")
_PTS_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.e+-]+)")
# showinfo's pts_time has 6 significant digits (50 ms steps an hour into a stream), so the
# exact start comes from the integer pts and the filter's time base.
_TIME_BASE_RE = re.compile(r"config in time_base: (\d+)/(\d+)")
_ERROR_RE = re.compile(r"\[(?:error|fatal)\]\s*(.*)")
# "-loglevel +level" tags each line: "[info] text" or "[h264 @ 0x55d0] [error] text".
_LEVEL_RE = re.compile(r"^(?:\[[^\]]+ @ 0x[0-9a-f]+\] )?\[(panic|fatal|error|warning|info|verbose|debug)\] ?", re.M)


@dataclass(frozen=True)
class MediaInfo:
    container: str  # "mpegts" or "mp4"
    duration: float  # seconds of decoded video (frames / fps)
    start_time: float  # pts of the first video frame, seconds on the source clock
    width: int
    height: int
    fps: Fraction
    has_audio: bool
    video_codec: str
    audio_codec: str | None = None
    sample_rate: int | None = None
    frames: int = 0  # decoded video frames
    size: int = 0  # bytes
    cpu_seconds: float = 0.0  # what the probe itself cost (user+system)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _run(path: str, name: str, timeout: float, max_pixels: int, max_duration: float, decode: bool
         ) -> tuple[str, int, list[str], float, str]:
    """One ffmpeg: print the header, then read every packet (decoding them unless `decode` is off).

    decode: video and audio are decoded to the null muxer; ``showinfo`` lists every frame.
    Otherwise video packets are stream-copied to ``framecrc`` on stdout (pts per packet, no
    decode): for a chunk already decode-checked at ingest, the transcode's own decode catches
    the rest. -max_pixels makes the decoder refuse an absurd picture instead of allocating it,
    and -t bounds the work on an absurdly long file; the header checks then name the reason.
    """
    args = [
        find_binary("ffmpeg"), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "repeat+level+info",
        "-max_pixels", str(max_pixels), "-t", _secs(max_duration + 1), "-threads", "1",
        "-copyts", "-i", path,
    ]
    if decode:
        args += ["-map", "0:v:0", "-map", "0:a:0?", "-vf", "showinfo", "-f", "null", "-"]
    else:
        args += ["-map", "0:v:0", "-c", "copy", "-f", "framecrc", "pipe:1"]
    proc = run_process(args, timeout=timeout, stdout=not decode)
    text = _LEVEL_RE.sub("", proc.stderr)
    if not _INPUT_RE.search(text):
        # ffmpeg could not open it: the last line says why (path prefix removed).
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else "no output from ffmpeg"
        reason = reason.split(": ", 1)[-1] if path in reason else reason
        raise InvalidMediaError(f"{name}: unreadable media ({_one_line(reason)})")
    errors = [m.group(1) for m in _ERROR_RE.finditer(proc.stderr)]
    return text, proc.returncode, errors, proc.cpu_seconds, proc.stdout


def _secs(value: float) -> str:
    return f"{value:.3f}"


def _parse_fps(text: str) -> Fraction:
    m = _FPS_RE.search(text)
    if not m:
        return Fraction(0)
    value = Fraction(m.group(1)) * (1000 if m.group(2) else 1)
    # 29.97 is printed rounded; snap to the NTSC rational the encoder really used.
    for ntsc in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)):
        if abs(value - ntsc) < Fraction(1, 100):
            return ntsc
    return value.limit_denominator(1001)


def probe(path: str, *, max_duration: float = MAX_DURATION, max_pixels: int = MAX_PIXELS,
          timeout: float = 60.0, decode: bool = True) -> MediaInfo:
    """Validate a source chunk and describe it; raise InvalidMediaError with a one-line reason.

    decode=False skips the decode check (container, streams, sizes, packets are still checked):
    for a chunk that passed a full probe at ingest, so the transcode does not decode it twice.
    """
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InvalidMediaError(f"{name}: cannot read source chunk ({exc.strerror})") from None
    if size == 0:
        raise InvalidMediaError(f"{name}: empty file")

    header, returncode, errors, cpu, packets = _run(path, name, timeout, max_pixels, max_duration, decode)
    fmt = _INPUT_RE.search(header)
    assert fmt is not None  # _header guarantees it
    container = _CONTAINERS.get(fmt.group(1))
    if container is None:
        raise InvalidMediaError(f"{name}: unsupported container '{fmt.group(1)}'; send MPEG-TS or MP4")
    if container == "mpegts" and size % TS_PACKET:
        raise InvalidMediaError(
            f"{name}: truncated MPEG-TS ({size} bytes is not a whole number of {TS_PACKET}-byte packets)"
        )

    streams = _STREAM_RE.findall(header)
    video = next((s for s in streams if s[1] == "Video" and "attached pic" not in s[2]), None)
    if video is None:
        raise InvalidMediaError(f"{name}: no video stream")
    audio = next((s for s in streams if s[1] == "Audio"), None)
    vdesc = video[2]
    dims = _SIZE_RE.search(vdesc)
    if not dims:
        raise InvalidMediaError(f"{name}: video stream without a picture size")
    width, height = int(dims.group(1)), int(dims.group(2))
    if width < 16 or height < 16 or width * height > max_pixels:
        raise InvalidMediaError(f"{name}: absurd resolution {width}x{height} (limit {max_pixels} pixels)")

    dur = _DURATION_RE.search(header)
    if dur is None or dur.group(1) == "N/A":
        raise InvalidMediaError(f"{name}: unknown duration")
    declared = int(dur.group(2)) * 3600 + int(dur.group(3)) * 60 + float(dur.group(4))
    start = float(dur.group(5) or 0)
    if container == "mp4" and 0 < start < declared:
        # ffmpeg prints an MP4's end time as its Duration when the first sample is not at 0
        # (segment-muxer chunks keep the source clock); the chunk's own length is the span.
        declared -= start
    if not 0 < declared <= max_duration:
        raise InvalidMediaError(f"{name}: absurd duration {declared:.3f} s (limit {max_duration:g} s)")

    fps = _parse_fps(vdesc)
    video_codec = vdesc.split()[0].rstrip(",")
    audio_codec = audio[2].split()[0].rstrip(",") if audio else None
    hz = _HZ_RE.search(audio[2]) if audio else None

    if decode:
        first_pts, frames = _decoded(header, returncode, errors, name)
    else:
        first_pts, frames = _packets(packets, returncode, errors, name)
    if fps <= 0:
        raise InvalidMediaError(f"{name}: video stream without a frame rate")
    duration = float(frames / fps)
    return MediaInfo(
        container=container,
        duration=duration,
        start_time=first_pts,
        width=width,
        height=height,
        fps=fps,
        has_audio=audio is not None,
        video_codec=video_codec,
        audio_codec=audio_codec,
        sample_rate=int(hz.group(1)) if hz else None,
        frames=frames,
        size=size,
        cpu_seconds=cpu,
    )


def _decoded(stderr: str, returncode: int, errors: list[str], name: str) -> tuple[float, int]:
    """(first video pts in s, decoded video frames); any decoder/demuxer error means corrupt."""
    if errors or returncode != 0:
        reason = errors[0] if errors else (stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
        raise InvalidMediaError(f"{name}: corrupt or truncated media (decode error: {_one_line(reason)})")
    frames = _PTS_RE.findall(stderr)
    if not frames:
        raise InvalidMediaError(f"{name}: no decodable video frames")
    tb = _TIME_BASE_RE.search(stderr)
    start = float(int(frames[0][1]) * Fraction(int(tb.group(1)), int(tb.group(2)))) if tb else float(frames[0][2])
    return start, len(frames)


_FRAMECRC_TB_RE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.M)
_FRAMECRC_RE = re.compile(r"^0,\s*(-?\d+),\s*(-?\d+),", re.M)


def _packets(framecrc: str, returncode: int, errors: list[str], name: str) -> tuple[float, int]:
    """(earliest video pts in s, video packets) from framecrc lines: `0, dts, pts, dur, size, crc`."""
    if errors or returncode != 0:
        reason = errors[0] if errors else "ffmpeg failed"
        raise InvalidMediaError(f"{name}: corrupt or truncated media (demux error: {_one_line(reason)})")
    tb = _FRAMECRC_TB_RE.search(framecrc)
    pts = [int(m.group(2)) for m in _FRAMECRC_RE.finditer(framecrc)]
    if not tb or not pts:
        raise InvalidMediaError(f"{name}: no video packets")
    # With B-frames the first packet in decode order is not the first shown: take the minimum.
    return float(min(pts) * Fraction(int(tb.group(1)), int(tb.group(2)))), len(pts)
