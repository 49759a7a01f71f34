"""Fake media for low-latency parts: the same contracts as the real transcode, with real CMAF bytes.

A part's source is a JSON body {"start": s, "duration": d} (what `fake_probe` reads); the fake
transcoder places it exactly where the real job would (grid span and audio plan from the job) and writes
real fragments built in the box layer (an IDR and P-frames of 4 bytes each, AAC frames of 6 bytes), so
the packager's segment assembly and the players' view of tfdt can be checked byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from chalicelib.errors import TranscodeError
from chalicelib.media.ladder import Ladder
from chalicelib.transcode import audio as audio_plan
from chalicelib.transcode import boxes
from tests.support.fake_media import _init, fake_probe


def part_body(seq: int, index: int, part: float = 0.5, segment: float = 2.0, ts_start: float = 1.4,
              duration: float | None = None) -> bytes:
    return json.dumps({"start": ts_start + seq * segment + index * part,
                       "duration": part if duration is None else duration}).encode()


@dataclass
class FakePartTranscoder:
    crashes: dict[tuple[int, float], int] = field(default_factory=dict)
    jobs: list[Any] = field(default_factory=list)

    def __call__(self, job: Any) -> Any:
        self.jobs.append(job)
        info = fake_probe(job.source_path)
        key = (job.seq, info.start_ticks)
        if self.crashes.get(key, 0) > 0:
            self.crashes[key] -= 1
            raise TranscodeError(f"ffmpeg killed (simulated) on part at {info.start_ticks}")
        ladder: Ladder = job.ladder
        span = job.video_span(info)
        start = job.start_ticks if job.start_ticks is not None else round(job.media_start * 90_000)
        plan = audio_plan.plan(ladder, info, start, span, not_before=job.audio_not_before,
                               not_after=job.audio_not_after)
        fps = ladder.frame_rate
        outs = []
        for name in job.renditions or ladder.names:
            folder = Path(job.output_dir) / name
            folder.mkdir(parents=True, exist_ok=True)
            init, seg = folder / "init.mp4", folder / f"{job.seq:08d}.m4s"
            audio = name == ladder.audio.name
            init.write_bytes(boxes.normalize_init(_init(audio)))
            if audio:
                st, dur = plan.span.start, plan.span.duration
                items = [boxes.Sample(1024, 6, None, 0, b"\x21\x10\x05\x00\xa0\x1c")] * plan.span.frames
                codecs: str = "mp4a.40.2"
            else:
                st, dur = span.start(fps), span.duration(fps)
                frame = ladder.frame_ticks
                items = [boxes.Sample(frame, 40 if i == 0 else 4, 0x02000000 if i == 0 else 0x01010000, 0,
                                      bytes([i % 256]) * (40 if i == 0 else 4)) for i in range(span.frames)]
                codecs = "avc1.42c01e"
            fragment = boxes.build_fragment(items, 0, 1)
            seg.write_bytes(boxes.media_segment((fragment,), st, job.seq * 64 + 1))
            outs.append(SimpleNamespace(rendition=name, init_path=str(init), segment_path=str(seg),
                                        duration=dur / (48_000 if audio else 90_000), size=seg.stat().st_size,
                                        start_ticks=st, duration_ticks=dur, codecs=codecs, iframes=()))
        return SimpleNamespace(outputs=tuple(outs), cpu_seconds=0.01, wall_seconds=0.01, audio=plan, audio_padded=0)
