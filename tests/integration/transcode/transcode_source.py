"""Shared by the transcode integration tests: a synthetic live source, cut like the push helper cuts it.

30 s of testsrc2 + a 440 Hz sine (small picture, TEST_LADDER), cut by ffmpeg's segment muxer
into 2 s MPEG-TS chunks that keep the source clock (timestamps continue across chunks).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chalicelib.media.ladder import TEST_LADDER
from chalicelib.transcode import RenditionOutput, TranscodeJob, TranscodeResult, find_binary

SOURCE_SECONDS = 30
CHUNK_SECONDS = 2
SPLICE_SEQ, SPLICE_AT = 7, 0.8  # an ad break 0.8 s into chunk 7 (media time 14.8 s)


def make_chunks(folder: Path, seconds: int = SOURCE_SECONDS, fmt: str = "mpegts", ext: str = "ts") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50",
         "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k",
         "-f", "segment", "-segment_time", str(CHUNK_SECONDS), "-segment_format", fmt,
         str(folder / f"%05d.{ext}")],
        check=True, timeout=300,
    )
    return sorted(folder.glob(f"*.{ext}"))


# One id per test process: parallel workers transcode at the same time, and the scratch-file check
# must only look at this process's jobs.
CHANNEL_ID = f"test-channel-{os.getpid()}"


@dataclass(frozen=True)
class Channel:
    chunks: list[Path]
    results: dict[int, TranscodeResult]  # by seq; each chunk's job wrote to its own folder
    root: Path

    def job(self, seq: int, output_dir: Path) -> TranscodeJob:
        return TranscodeJob(CHANNEL_ID, seq, str(self.chunks[seq]), str(output_dir), TEST_LADDER,
                            media_start=seq * CHUNK_SECONDS,
                            splice_points=(SPLICE_AT,) if seq == SPLICE_SEQ else ())

    def concatenated(self, rendition: str) -> Path:
        """init + every segment in seq order: what a player appends to its SourceBuffer."""
        out = self.root / f"cat-{rendition}.mp4"
        with out.open("wb") as f:
            f.write(Path(self.output(0, rendition).init_path).read_bytes())
            for seq in sorted(self.results):
                f.write(Path(self.output(seq, rendition).segment_path).read_bytes())
        return out

    def output(self, seq: int, rendition: str) -> RenditionOutput:
        return next(o for o in self.results[seq].outputs if o.rendition == rendition)
