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

import itertools
import json
import os
import re
from dataclasses import asdict, dataclass, replace
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
class AudioInfo:
    """The first audio stream, read from its packets (no decode): what the transcoder needs to decide
    between copying the encoder's AAC and re-encoding, and to place it on the channel's audio grid."""

    codec: str  # ffmpeg's decoder name: "aac", "mp3", "ac3", ...
    profile: str  # "LC", "HE-AAC", ... ("" when ffmpeg prints none)
    sample_rate: int
    channels: int
    start_ticks: int  # pts of the first packet, 90 kHz ticks on the source clock
    end_ticks: int  # pts + duration of the last packet, 90 kHz ticks
    packets: int
    frame_samples: int  # samples per packet (1024 for AAC-LC; 0 when packets vary)
    contiguous: bool  # every packet starts where the previous one ended (within 1 tick)
    bitrate: int = 0  # bits/s from the stream header (0: unknown)


@dataclass(frozen=True)
class MediaInfo:
    container: str  # "mpegts" or "mp4"
    duration: float  # seconds of source video: end_ticks - start_ticks
    start_time: float  # pts of the first video frame, seconds on the source clock
    width: int
    height: int
    fps: Fraction
    has_audio: bool
    video_codec: str
    audio_codec: str | None = None
    sample_rate: int | None = None
    frames: int = 0  # video packets (= frames)
    size: int = 0  # bytes
    cpu_seconds: float = 0.0  # what the probe itself cost (user+system)
    # Exact source timing in 90 kHz ticks: the first video pts and where the last frame ends (its pts +
    # duration), so consecutive chunks of one encoder meet exactly: start_ticks[k+1] == end_ticks[k].
    start_ticks: int = 0
    end_ticks: int = 0
    audio: AudioInfo | None = None


def to_record(info: MediaInfo) -> str:
    """The probe as a compact JSON string for the chunk's record: ingest probes every chunk (with the
    decode check) and the transcode job reads the same object version, so the worker takes this instead
    of starting another ffmpeg to probe it again (issue #10: ~0.1 CPU-s per chunk)."""
    data = asdict(info)
    data["fps"] = f"{info.fps.numerator}/{info.fps.denominator}"
    data["cpu_seconds"] = 0.0  # spent by whoever probed, not by the reader of the record
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def from_record(text: object) -> MediaInfo | None:
    """The MediaInfo `to_record` wrote; None for anything else (an old record, a hand-edited or
    truncated one): the caller then probes the file itself. Never raises."""
    if not isinstance(text, str) or not text:
        return None
    try:
        data = json.loads(text)
        audio = data.pop("audio", None)
        fps = Fraction(str(data.pop("fps")))
        info = MediaInfo(fps=fps, audio=AudioInfo(**audio) if audio is not None else None, **data)
    except (ValueError, TypeError, KeyError, ZeroDivisionError, AttributeError):
        return None
    if info.container not in _CONTAINERS.values() or info.end_ticks < info.start_ticks or info.fps <= 0:
        return None
    return replace(info, cpu_seconds=0.0)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _run(path: str, name: str, timeout: float, max_pixels: int, max_duration: float, decode: bool
         ) -> tuple[str, int, list[str], float, str]:
    """One ffmpeg: print the header, list every packet of the first video and audio stream
    (``framecrc`` of a stream copy on stdout: pts, duration, size, flags), and with `decode` also
    decode both to the null muxer in the same process, so any decoder error shows up in stderr.

    -max_pixels makes the decoder refuse an absurd picture instead of allocating it, and -t bounds
    the work on an absurdly long file; the header checks then name the reason.
    """
    args = [
        find_binary("ffmpeg"), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "repeat+level+info",
        "-max_pixels", str(max_pixels), "-t", _secs(max_duration + 1), "-threads", "1",
        "-copyts", "-i", path,
    ]
    if decode:
        args += ["-map", "0:v:0", "-map", "0:a:0?", "-f", "null", "-"]
    args += ["-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "pipe:1"]
    proc = run_process(args, timeout=timeout, stdout=True)
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


_CHANNELS_RE = re.compile(r"\d+ Hz, ([^,]+),")
_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.0(side)": 5,
                    "5.1": 6, "5.1(side)": 6, "6.1": 7, "7.1": 8}
_KBPS_RE = re.compile(r"(\d+) kb/s")
_PROFILE_RE = re.compile(r"^\w+ \(([^)]*)\)")


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
    assert fmt is not None  # _run guarantees it
    container = _CONTAINERS.get(fmt.group(1))
    if container is None:
        raise InvalidMediaError(f"{name}: unsupported container '{fmt.group(1)}'; send MPEG-TS or MP4")
    if container == "mpegts" and size % TS_PACKET:
        raise InvalidMediaError(
            f"{name}: truncated MPEG-TS ({size} bytes is not a whole number of {TS_PACKET}-byte packets)"
        )

    inputs = _input_streams(header)
    video = next((s for s in inputs if s[1] == "Video" and "attached pic" not in s[2]), None)
    if video is None:
        raise InvalidMediaError(f"{name}: no video stream")
    audio = next((s for s in inputs if s[1] == "Audio"), None)
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
    if errors or returncode != 0:
        reason = errors[0] if errors else (header.strip().splitlines() or ["ffmpeg failed"])[-1]
        kind = "decode" if decode else "demux"
        raise InvalidMediaError(f"{name}: corrupt or truncated media ({kind} error: {_one_line(reason)})")
    tracks = _framecrc(packets)
    vpk = tracks.get(0)
    if not vpk or not vpk.packets:
        raise InvalidMediaError(f"{name}: no {'decodable ' if decode else ''}video frames")
    if fps <= 0:
        raise InvalidMediaError(f"{name}: video stream without a frame rate")
    frame_ticks = Fraction(TICKS_PER_SECOND) / fps
    # The last frame's own duration is often missing (0) in a cut chunk, or clipped to where the
    # segmenter cut (ffmpeg's MP4 segments end the track at the cut time, 243 of 512 ticks): that frame
    # lasts one nominal frame, or the chunk loses its last frame on the grid. Only that one: every other
    # frame (and a genuinely short last frame of a TS chunk, e.g. variable-rate phone footage) keeps its
    # own duration, or the chunk would overlap the next one's first frame.
    start_ticks = vpk.first_pts
    nominal = round(frame_ticks)
    end_ticks = max(p + d for p, d in zip(vpk.pts, vpk.durations, strict=True))
    last_pts, last_dur = max(zip(vpk.pts, vpk.durations, strict=True))
    if last_dur == 0 or (container == "mp4" and last_dur < nominal):
        end_ticks = max(end_ticks, last_pts + nominal)
    if not 0 < (end_ticks - start_ticks) / TICKS_PER_SECOND <= max_duration:
        raise InvalidMediaError(f"{name}: absurd duration {(end_ticks - start_ticks) / TICKS_PER_SECOND:.3f} s "
                                f"(limit {max_duration:g} s)")
    audio_info = _audio_info(audio[2], tracks.get(1)) if audio else None
    return MediaInfo(
        container=container,
        duration=(end_ticks - start_ticks) / TICKS_PER_SECOND,
        start_time=start_ticks / TICKS_PER_SECOND,
        width=width,
        height=height,
        fps=fps,
        has_audio=audio is not None,
        video_codec=video_codec,
        audio_codec=audio_info.codec if audio_info else None,
        sample_rate=audio_info.sample_rate if audio_info else None,
        frames=vpk.packets,
        size=size,
        cpu_seconds=cpu,
        start_ticks=start_ticks,
        end_ticks=end_ticks,
        audio=audio_info,
    )


def _input_streams(header: str) -> list[tuple[str, str, str]]:
    """Stream lines of input #0 only (the header also lists the output streams)."""
    cut = header.find("Output #")
    part = header if cut < 0 else header[:cut]
    return _STREAM_RE.findall(part)


def _audio_info(desc: str, track: _Track | None) -> AudioInfo:
    codec = desc.split()[0].rstrip(",")
    prof = _PROFILE_RE.match(desc)
    hz = _HZ_RE.search(desc)
    layout = _CHANNELS_RE.search(desc)
    channels = _LAYOUT_CHANNELS.get(layout.group(1).strip(), 0) if layout else 0
    if not channels and layout:
        m = re.match(r"(\d+) channels", layout.group(1).strip())
        channels = int(m.group(1)) if m else 0
    kbps = _KBPS_RE.search(desc)
    rate = int(hz.group(1)) if hz else 0
    if track is None or not track.packets:
        return AudioInfo(codec, prof.group(1) if prof else "", rate, channels, 0, 0, 0, 0, False,
                         int(kbps.group(1)) * 1000 if kbps else 0)
    durations = set(track.durations)
    frame_ticks = durations.pop() if len(durations) == 1 else 0
    samples = round(Fraction(frame_ticks * rate, TICKS_PER_SECOND)) if frame_ticks and rate else 0
    order = sorted(zip(track.pts, track.durations, strict=True))
    contiguous = all(abs(b[0] - (a[0] + a[1])) <= 1 for a, b in itertools.pairwise(order))
    end = max(p + d for p, d in order)
    return AudioInfo(codec, prof.group(1) if prof else "", rate, channels, order[0][0], end, len(order), samples,
                     contiguous, int(kbps.group(1)) * 1000 if kbps else 0)


TICKS_PER_SECOND = 90_000
_FRAMECRC_TB_RE = re.compile(r"^#tb (\d+): (\d+)/(\d+)", re.M)
_FRAMECRC_RE = re.compile(r"^(\d+),\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(\d+),", re.M)


@dataclass
class _Track:
    pts: list[int]  # 90 kHz ticks, in file (decode) order
    durations: list[int]  # 90 kHz ticks

    @property
    def packets(self) -> int:
        return len(self.pts)

    @property
    def first_pts(self) -> int:
        # With B-frames the first packet in decode order is not the first shown: take the minimum.
        return min(self.pts)


def _framecrc(text: str) -> dict[int, _Track]:
    """Packets per output stream (0 = video, 1 = audio) from framecrc lines
    `stream, dts, pts, duration, size, crc`, converted from each stream's time base to 90 kHz."""
    bases = {int(m.group(1)): Fraction(int(m.group(2)), int(m.group(3))) for m in _FRAMECRC_TB_RE.finditer(text)}
    tracks: dict[int, _Track] = {}
    for m in _FRAMECRC_RE.finditer(text):
        idx = int(m.group(1))
        tb = bases.get(idx, Fraction(1, TICKS_PER_SECOND)) * TICKS_PER_SECOND
        t = tracks.setdefault(idx, _Track([], []))
        t.pts.append(round(int(m.group(3)) * tb))
        t.durations.append(round(int(m.group(4)) * tb))
    return tracks
