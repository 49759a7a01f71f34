"""What a viewer sees and hears, measured: `python -m devtools.mediacheck BASE_URL CHANNEL [--segments N]`.

Given a channel on the origin (an HTTP base URL, or any `fetch(path) -> bytes`), this downloads the
newest N segments of every rendition of the DVR playlists, and reports:

- **audio dips at segment boundaries**: the audio is decoded with ffmpeg and its level measured in
  5 ms windows; a boundary "dips" when any window within 30 ms of it is below 30 % of the median level
  (a steady tone source, like `slipstream push testsrc`, should never dip);
- **decoded vs listed duration** per rendition: samples / frames ffmpeg decodes vs the EXTINF sums
  and the boxes' sample tables (sample-exact audio: equal to the sample);
- **tfdt continuity**: every segment's tfdt must equal the previous one's tfdt + duration inside a
  discontinuity domain (gaps and overlaps counted, in ticks);
- **A/V start offset** per segment (audio tfdt - video tfdt of the same media sequence number);
- **A/V sync** from content, when the source carries the sync pattern of `sync_source_args` (a white
  flash on the video frame at each second, a 1 kHz beep at that frame's time in the right channel):
  flash-to-beep offset per second, and its drift (max - min);
- **CODECS vs the bitstream**: what the master playlist advertises vs avcC / AudioSpecificConfig.

The same module is the library the integration tests and benches use: `check(fetch, channel)` returns a
`Report`; `Report.problems()` lists what a viewer would notice.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8

from chalicelib.transcode import boxes
from chalicelib.transcode.ffmpeg import find_binary

WINDOW_MS = 5
DIP_RATIO = 0.3
DIP_REACH_MS = 30
SKIP_START_MS = 50

Fetch = Callable[[str], bytes]


def http_fetch(base_url: str) -> Fetch:
    base = base_url.rstrip("/")

    def fetch(path: str) -> bytes:
        with urllib.request.urlopen(f"{base}/{path}", timeout=30) as resp:
            return bytes(resp.read())

    return fetch


def sync_source_args(fps: str = "25", seconds: float = 60, size: str = "320x180", rate: int = 48_000,
                     flash: float | None = None) -> list[str]:
    """ffmpeg input args for a source carrying the sync pattern: testsrc2 with a white flash on the first
    frame at or after each whole second, and stereo audio: a steady 440 Hz tone on the left (for dips) and
    a 20 ms 1 kHz beep on the right starting exactly at each flash frame's time. `flash`: how long the
    flash lasts (default one frame; longer so that a frame-rate conversion cannot drop it)."""
    fr = Fraction(fps)
    frs = f"{fr.numerator}/{fr.denominator}"
    lasts = float(1 / fr) if flash is None else flash
    flash_box = f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t+1e-6\\,1)\\,{lasts:.6f})'"
    # Start of the beep = time of the first frame at or after floor(t): ceil(floor(t)*fps)/fps.
    onset = f"ceil(floor(t)*{frs})/({frs})"
    right = f"0.5*sin(2*PI*1000*t)*gte(t\\,{onset})*lt(t\\,{onset}+0.02)"
    left = "0.5*sin(2*PI*440*t)"
    return ["-f", "lavfi", "-t", f"{seconds:g}", "-i", f"testsrc2=size={size}:rate={frs},{flash_box}",
            "-f", "lavfi", "-t", f"{seconds:g}", "-i", f"aevalsrc={left}|{right}:s={rate}:c=stereo"]


@dataclass
class TrackReport:
    rendition: str
    kind: str  # "video" | "audio"
    segments: int
    listed_seconds: float  # sum of EXTINF
    box_ticks: int  # sum of sample durations in the segments
    timescale: int
    decoded_units: int  # video frames or audio samples ffmpeg decoded
    expected_units: int  # what the boxes say there should be
    tfdt_gaps: int = 0
    tfdt_overlaps: int = 0
    worst_jump_ticks: int = 0
    codecs_advertised: str = ""
    codecs_bitstream: str = ""
    dips: list[float] = field(default_factory=list)  # boundary times (s) where the audio dipped
    boundaries_checked: int = 0


@dataclass
class Report:
    channel: str
    tracks: list[TrackReport] = field(default_factory=list)
    av_offsets_ms: list[float] = field(default_factory=list)  # audio tfdt - video tfdt, per segment
    sync_offsets_ms: list[float] = field(default_factory=list)  # beep - flash, per second (sync sources)
    notes: list[str] = field(default_factory=list)

    @property
    def av_sync_drift_ms(self) -> float | None:
        return None if len(self.sync_offsets_ms) < 2 else max(self.sync_offsets_ms) - min(self.sync_offsets_ms)

    def problems(self) -> list[str]:
        out = []
        for t in self.tracks:
            if t.dips:
                out.append(f"{t.rendition}: audio dips at {len(t.dips)} of {t.boundaries_checked} boundaries "
                           f"(first at {t.dips[0]:.3f} s)")
            if t.decoded_units != t.expected_units:
                out.append(f"{t.rendition}: decoded {t.decoded_units} {'samples' if t.kind == 'audio' else 'frames'},"
                           f" the segments hold {t.expected_units}")
            if abs(t.box_ticks / t.timescale - t.listed_seconds) > 0.0005 * t.segments + 1e-6:
                out.append(f"{t.rendition}: segments hold {t.box_ticks / t.timescale:.4f} s, EXTINF lists "
                           f"{t.listed_seconds:.4f} s")
            if t.tfdt_gaps or t.tfdt_overlaps:
                out.append(f"{t.rendition}: {t.tfdt_gaps} tfdt gaps, {t.tfdt_overlaps} overlaps "
                           f"(worst {t.worst_jump_ticks} ticks)")
            if t.codecs_advertised and t.codecs_advertised != t.codecs_bitstream:
                out.append(f"{t.rendition}: CODECS says {t.codecs_advertised}, the bitstream is {t.codecs_bitstream}")
        drift = self.av_sync_drift_ms
        if drift is not None and drift >= 1.0:
            out.append(f"A/V sync drifts by {drift:.2f} ms (flash-to-beep offsets {min(self.sync_offsets_ms):.2f} "
                       f"to {max(self.sync_offsets_ms):.2f} ms)")
        return out

    def summary(self) -> dict[str, Any]:
        return {"channel": self.channel, "problems": self.problems(), "av_sync_drift_ms": self.av_sync_drift_ms,
                "av_offset_ms": [min(self.av_offsets_ms, default=0.0), max(self.av_offsets_ms, default=0.0)],
                "tracks": [asdict(t) for t in self.tracks], "notes": self.notes}


@dataclass
class _Track:
    rendition: str
    kind: str
    playlist: Any  # m3u8 playlist
    advertised: str


def check(fetch: Fetch, channel: str, *, segments: int = 30, window: str = "dvr") -> Report:
    """Measure the newest `segments` segments of every rendition of `channel`'s `window` playlists."""
    master_name = "master.m3u8" if window == "live" else f"{window}.m3u8"
    master = m3u8.loads(fetch(f"{channel}/{master_name}").decode())
    tracks: list[_Track] = []
    audio_codec = ""
    for p in master.playlists:
        codecs = (p.stream_info.codecs or "").split(",")
        audio_codec = next((c for c in codecs if c.startswith("mp4a")), audio_codec)
        name = p.uri.split("/")[0]
        tracks.append(_Track(name, "video", m3u8.loads(fetch(f"{channel}/{p.uri}").decode()),
                             next((c for c in codecs if c.startswith("avc")), "")))
    for media in master.media:
        if media.type == "AUDIO" and media.uri:
            name = media.uri.split("/")[0]
            tracks.append(_Track(name, "audio", m3u8.loads(fetch(f"{channel}/{media.uri}").decode()), audio_codec))
    report = Report(channel)
    starts: dict[str, dict[int, int]] = {}  # kind -> msn -> tfdt (first video rendition, the audio)
    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="mediacheck-") as tmp:
        for t in tracks:
            tr, tfdts, cat = _track(fetch, channel, t, segments, Path(tmp))
            report.tracks.append(tr)
            if t.kind not in starts:
                starts[t.kind], files[t.kind] = tfdts, cat
            if t.kind == "audio":
                _audio_levels(cat, tr, tfdts)
        video_ts = next((tr.timescale for tr in report.tracks if tr.kind == "video"), 90_000)
        audio_ts = next((tr.timescale for tr in report.tracks if tr.kind == "audio"), 48_000)
        for msn, v in starts.get("video", {}).items():
            a = starts.get("audio", {}).get(msn)
            if a is not None:
                report.av_offsets_ms.append(round((a / audio_ts - v / video_ts) * 1000, 3))
        if "video" in files and "audio" in files:
            report.sync_offsets_ms = _sync(files["video"], files["audio"], audio_ts)
    return report


def _track(fetch: Fetch, channel: str, t: _Track, count: int, tmp: Path) -> tuple[TrackReport, dict[int, int], Path]:
    segs = t.playlist.segments[-count:]
    base = t.playlist.media_sequence + len(t.playlist.segments) - len(segs)
    prefix = f"{channel}/{t.rendition}"
    cat = tmp / f"{t.rendition}.mp4"
    listed = sum(float(s.duration) for s in segs)
    tfdts: dict[int, int] = {}
    total = 0
    gaps = overlaps = worst = 0
    expected_end: int | None = None
    init_uri = ""
    init = b""
    scale = 0
    with cat.open("wb") as out:
        for i, s in enumerate(segs):
            uri = s.init_section.uri if s.init_section is not None else init_uri
            if uri != init_uri or s.discontinuity:
                if uri != init_uri:
                    init = fetch(f"{prefix}/{uri}")
                    scale = boxes.timescale(init)
                    if not init_uri:
                        out.write(init)
                    init_uri = uri
                expected_end = None  # a new discontinuity domain
            body = fetch(f"{prefix}/{s.uri}")
            infos = boxes.fragments_info(body, init)
            tfdt = infos[0].decode_time
            dur = sum(f.duration for f in infos)
            if expected_end is not None and tfdt != expected_end:
                jump = tfdt - expected_end
                gaps += jump > 0
                overlaps += jump < 0
                worst = max(worst, abs(jump))
            expected_end = tfdt + dur
            tfdts[base + i] = tfdt
            total += dur
            out.write(body)
    codecs = boxes.codecs(init) if init else ""
    if t.kind == "audio":
        decoded = _decoded_samples(cat)
        expected = total  # samples (audio timescale = sample rate)
    else:
        decoded = _decoded_frames(cat)
        expected = _frames_held(cat)
    return (TrackReport(t.rendition, t.kind, len(segs), round(listed, 6), total, scale or 1, decoded, expected, gaps,
                        overlaps, worst, t.advertised, codecs), tfdts, cat)


def _frames_held(path: Path) -> int:
    data = path.read_bytes()
    parts = boxes.split(data)
    return sum(len(boxes.samples(f, parts.init)) for f in parts.fragments)


def _ffmpeg(args: list[str]) -> bytes:
    proc = subprocess.run([find_binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
                          capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def _pcm(path: Path) -> tuple[array.array[float], int]:
    """Decoded audio as interleaved float32 (stereo) at its own rate, from the first sample of the file."""
    raw = _ffmpeg(["-i", str(path), "-map", "0:a:0", "-f", "f32le", "-ac", "2", "-"])
    pcm = array.array("f")
    pcm.frombytes(raw[: len(raw) // 4 * 4])
    return pcm, 2


def _decoded_samples(path: Path) -> int:
    pcm, ch = _pcm(path)
    return len(pcm) // ch


def _decoded_frames(path: Path) -> int:
    raw = _ffmpeg(["-i", str(path), "-map", "0:v:0", "-vf", "scale=8:8,format=gray", "-f", "rawvideo", "-"])
    return len(raw) // 64


def _audio_levels(path: Path, tr: TrackReport, tfdts: dict[int, int]) -> None:
    """RMS of the left channel in 5 ms windows; dips near segment boundaries."""
    pcm, ch = _pcm(path)
    rate = tr.timescale
    left = pcm[0::ch]
    w = rate * WINDOW_MS // 1000
    levels = [math.sqrt(sum(x * x for x in left[i : i + w]) / w) for i in range(0, len(left) - w + 1, w)]
    if not levels:
        return
    median = statistics.median(levels)
    first = min(tfdts.values()) if tfdts else 0
    reach = DIP_REACH_MS // WINDOW_MS
    for tfdt in sorted(tfdts.values())[1:]:
        pos = (tfdt - first) / rate
        if pos * 1000 < SKIP_START_MS:
            continue
        k = int(pos * 1000 // WINDOW_MS)
        near = levels[max(0, k - reach) : k + reach + 1]
        tr.boundaries_checked += 1
        if near and min(near) < DIP_RATIO * median:
            tr.dips.append(round(pos, 3))


def _sync(video: Path, audio: Path, rate: int) -> list[float]:
    """Flash (video) to beep (right audio channel) offsets in ms, per second of the pattern, on the
    presentation timeline (with -copyts ffmpeg keeps each file's first tfdt as its first pts)."""
    proc = subprocess.run([find_binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "info", "-copyts", "-i",
                           str(video), "-map", "0:v:0", "-vf", "scale=8:8,format=gray,showinfo", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=600, check=False)
    flashes: list[float] = []
    prev_bright = False
    for m in re.finditer(r"pts_time:\s*([\d.]+).*?mean:\[(\d+)", proc.stderr):
        bright = int(m.group(2)) > 200
        if bright and not prev_bright:
            flashes.append(float(m.group(1)))
        prev_bright = bright
    start = _first_pts(audio)
    pcm, ch = _pcm(audio)
    right = pcm[1::ch]
    # A beep starts at the first sample above the threshold after a quarter second below it.
    beeps: list[float] = []
    last_loud = -rate
    for i, x in enumerate(right):
        if abs(x) > 0.1:
            if i - last_loud > rate // 4 and i >= rate * SKIP_START_MS // 500:  # not cut by the stream's start
                beeps.append(start + i / rate)
            last_loud = i
    offsets = []
    for b in beeps:
        f = min(flashes, key=lambda x: abs(x - b), default=None)
        if f is not None and abs(b - f) < 0.2:
            offsets.append(round((b - f) * 1000, 3))
    return offsets


def _first_pts(path: Path) -> float:
    out = subprocess.run([find_binary("ffmpeg"), "-hide_banner", "-nostdin", "-copyts", "-i", str(path), "-map",
                          "0:a:0", "-frames:a", "1", "-af", "ashowinfo", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60, check=False).stderr
    m = re.search(r"pts_time:\s*([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.mediacheck", description=__doc__.splitlines()[0])
    ap.add_argument("base_url", help="origin base URL (the channel's playlists are under BASE_URL/CHANNEL/)")
    ap.add_argument("channel")
    ap.add_argument("--segments", type=int, default=30)
    ap.add_argument("--window", default="dvr", choices=["live", "dvr"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    report = check(http_fetch(args.base_url), args.channel, segments=args.segments, window=args.window)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        for t in report.tracks:
            print(f"{t.rendition:>6} {t.kind}: {t.segments} segments, listed {t.listed_seconds:.3f} s, "
                  f"decoded {t.decoded_units} / held {t.expected_units}, tfdt gaps {t.tfdt_gaps} overlaps "
                  f"{t.tfdt_overlaps}, CODECS {t.codecs_advertised or '-'} vs {t.codecs_bitstream}"
                  + (f", dips {len(t.dips)}/{t.boundaries_checked}" if t.kind == "audio" else ""))
        offsets, sync = report.av_offsets_ms, report.sync_offsets_ms
        if offsets:
            print(f"A/V start offset per segment: {min(offsets):.2f} .. {max(offsets):.2f} ms")
        if sync:
            print(f"A/V sync (flash->beep) over {len(sync)} s: drift {report.av_sync_drift_ms:.3f} ms")
        for p in report.problems():
            print(f"PROBLEM: {p}")
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
