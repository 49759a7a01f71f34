"""Fake media tools for the functional pipeline tests: no ffmpeg, same contracts as the real ones.

- `fake_probe`: a chunk is a JSON body {"start": s, "duration": d} (source clock, seconds), or bytes
  starting with b"CORRUPT" (invalid media). It describes 25 fps video and AAC-LC 48 kHz stereo whose
  first frame sits 480 ticks after the first video frame (what `slipstream push` chunks look like).
- `FakeTranscoder`: places outputs exactly where the real job would (grid span from the job, audio
  plan from chalicelib.transcode.audio), writes small placeholder files, can be told to crash.
- `fake_render_slate`: real CMAF templates built in the box layer (GOPs of the real lengths, silent
  audio), so the packager's slate composition runs for real.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from chalicelib.errors import InvalidMediaError, TranscodeError
from chalicelib.media import grid
from chalicelib.media.ladder import Ladder
from chalicelib.transcode import audio as audio_plan
from chalicelib.transcode import boxes, slate
from chalicelib.transcode.probe import AudioInfo, MediaInfo

# The encoder's audio: AAC frames on its own grid, 480 ticks after the first video frame of the source
# (TS clock starting at 1.4 s), cut like ffmpeg's segment muxer cuts them: a chunk holds the frames
# that start before its video ends.
AUDIO_LAG = 480
AUDIO_ORIGIN = round(1.4 * 90_000) + AUDIO_LAG


def fake_info(start: float, duration: float = 2.0, audio: bool = True, rate: int = 48_000, channels: int = 2
              ) -> MediaInfo:
    v0 = round(start * 90_000)
    v1 = v0 + round(duration * 90_000)
    a = None
    if audio:
        ticks = round(1024 * 90_000 / rate)
        first = -(-(v0 - AUDIO_ORIGIN) // ticks)
        last = -(-(v1 - AUDIO_ORIGIN) // ticks)
        packets = max(1, last - first)
        a0 = AUDIO_ORIGIN + first * ticks
        a = AudioInfo("aac", "LC", rate, channels, a0, a0 + packets * ticks, packets, 1024, True, 96_000)
    return MediaInfo(container="mpegts", duration=duration, start_time=v0 / 90_000, width=320, height=180,
                     fps=Fraction(25), has_audio=audio, video_codec="h264", audio_codec="aac" if audio else None,
                     sample_rate=rate if audio else None, frames=round(duration * 25), size=1000,
                     start_ticks=v0, end_ticks=v1, audio=a)


def fake_probe(path: str) -> MediaInfo:
    body = Path(path).read_bytes()
    if body.startswith(b"CORRUPT"):
        raise InvalidMediaError("truncated MPEG-TS: 1000 bytes is not a whole number of 188-byte packets")
    doc = json.loads(body)
    return fake_info(float(doc["start"]), float(doc.get("duration", 2.0)), bool(doc.get("audio", True)),
                     rate=int(doc.get("rate", 48_000)))


@dataclass
class FakeTranscoder:
    crashes: dict[int, int] = field(default_factory=dict)  # seq -> crashes left
    jobs: list[Any] = field(default_factory=list)
    prerolls: dict[int, bytes] = field(default_factory=dict)  # seq -> the pre-roll source it was given

    def __call__(self, job: Any) -> Any:
        self.jobs.append(job)
        if job.preroll_path:
            self.prerolls[job.seq] = Path(job.preroll_path).read_bytes()
        if self.crashes.get(job.seq, 0) > 0:
            self.crashes[job.seq] -= 1
            raise TranscodeError(f"ffmpeg killed (simulated) on chunk {job.seq}")
        info = fake_probe(job.source_path)
        ladder: Ladder = job.ladder
        span = job.video_span(info)
        start = job.start_ticks if job.start_ticks is not None else round(job.media_start * 90_000)
        plan = audio_plan.plan(ladder, info, start, span, not_before=job.audio_not_before,
                               not_after=job.audio_not_after)
        outs = []
        fps = ladder.frame_rate
        for name in job.renditions or ladder.names:
            folder = Path(job.output_dir) / name
            folder.mkdir(parents=True, exist_ok=True)
            init, seg = folder / "init.mp4", folder / f"{job.seq:08d}.m4s"
            init.write_bytes(f"init-{name}".encode())
            if name == ladder.audio.name:
                st, dur, codecs, iframes = plan.span.start, plan.span.duration, "mp4a.40.2", ()
            else:
                st, dur, codecs = span.start(fps), span.duration(fps), "avc1.42c01e"
                iframes = ((24, 1000 + job.seq, dur),)
            # What the output was made from: a test can tell which bytes of a re-uploaded key were used.
            seg.write_bytes(f"{name}-{job.seq}-{st}-{dur}-src{info.start_ticks}".encode())
            outs.append(SimpleNamespace(rendition=name, init_path=str(init), segment_path=str(seg),
                                        duration=dur / 90_000, size=seg.stat().st_size, start_ticks=st,
                                        duration_ticks=dur, codecs=codecs, iframes=iframes))
        return SimpleNamespace(outputs=tuple(outs), cpu_seconds=0.01, wall_seconds=0.01, audio=plan, audio_padded=0)


def _template(ladder: Ladder, name: str) -> bytes:
    init = boxes.normalize_init(_init(name == ladder.audio.name))
    fragments = []
    if name == ladder.audio.name:
        silent = boxes.Sample(1024, 6, None, 0, b"\x21\x10\x05\x00\xa0\x1c")
        fragments.append(boxes.build_fragment([silent] * 400, 0, 1))
    else:
        frame = ladder.frame_ticks
        for n, length in enumerate(slate.gop_lengths(ladder)):
            items = [boxes.Sample(frame, 40 if i == 0 else 4, 0x02000000 if i == 0 else 0x01010000, 0,
                                  bytes([n]) * (40 if i == 0 else 4)) for i in range(length)]
            fragments.append(boxes.build_fragment(items, 0, n + 1))
    return init + b"".join(fragments)


def _init(audio: bool) -> bytes:
    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    scale = 48_000 if audio else 90_000
    mdhd = box(b"mdhd", bytes(12) + scale.to_bytes(4, "big") + bytes(8))
    return box(b"ftyp", b"iso6\x00\x00\x02\x00iso6") + box(b"moov", box(b"trak", box(b"mdia", mdhd)))


def fake_render_slate(ladder: Ladder, output_dir: str, title: str, timeout: float) -> slate.Templates:
    files = {}
    for name in ladder.names:
        path = os.path.join(output_dir, name, slate.TEMPLATE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(_template(ladder, name))
        files[name] = path
    return slate.Templates(files)


__all__ = ["AUDIO_LAG", "FakeTranscoder", "fake_info", "fake_probe", "fake_render_slate", "grid"]
