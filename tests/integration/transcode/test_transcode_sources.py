"""Issue #10, for every kind of source: what a viewer gets from independently transcoded chunks.

Each source carries devtools.mediacheck's sync pattern (a steady tone on the left, a beep on the right
at each second, a white flash on the matching frame). It is cut into 2 s chunks like an encoder cuts
them, and every chunk is transcoded by the real job, out of order (1, 0, 3, 2, 5, 4), placed the way
ingest and the worker place it (run base, grid frames, audio bounds from neighbours already done, the
previous chunk as audio pre-roll). The outputs are listed in plain playlists and measured with
devtools.mediacheck: no tfdt gap or overlap, every frame and every sample decodable and exactly what
the boxes say, no audio dip at any boundary, CODECS equal to the bitstream, A/V sync held.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.media import grid
from chalicelib.media.ladder import LADDERS, Ladder
from chalicelib.transcode import TranscodeJob, TranscodeResult, find_binary, probe, run
from devtools import mediacheck

pytestmark = pytest.mark.integration

SECONDS = 12
ORDER = (1, 0, 3, 2, 5, 4)


@dataclass(frozen=True)
class Source:
    name: str
    fps: str  # of the source
    video: list[str]  # extra video args (VFR timing)
    audio: list[str]  # audio encode args; [] = no audio track
    ext: str = "ts"
    ladder: str = "test"
    sync: str = "exact"  # "exact": drift < 1 ms; "frame": within one output frame; "": no beep to find
    mode: str = "copy"
    flash: float | None = None  # longer than one source frame, so the ladder's frame rate cannot drop it


AAC48 = ["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
SOURCES = [
    Source("23.976fps", "24000/1001", [], AAC48, sync="frame"),
    Source("29.97fps", "30000/1001", [], AAC48, ladder="test-ntsc"),
    Source("50fps", "50", [], AAC48),
    Source("59.94fps", "60000/1001", [], AAC48, sync="frame", flash=0.045),
    # A phone: variable frame rate (timestamps jitter by up to 8 ms around 30 fps).
    Source("vfr", "30", ["-vf", "setpts='(N/30+0.008*sin(N*1.7))/TB'", "-fps_mode", "vfr"], AAC48, sync="frame",
           flash=0.045),
    Source("44.1kHz", "25", [], ["-c:a", "aac", "-b:a", "96k", "-ar", "44100", "-ac", "2"], mode="encode"),
    Source("32kHz-mono", "25", [], ["-c:a", "aac", "-b:a", "64k", "-ar", "32000", "-ac", "1"], sync="", mode="encode"),
    Source("5.1", "25", [], ["-c:a", "aac", "-b:a", "256k", "-ar", "48000", "-ac", "6"], sync="", mode="encode"),
    Source("no-audio", "25", [], [], sync="", mode="silence"),
    # MP4 chunks: AAC timing through edit lists and ms timescales does not tile; always re-encoded.
    Source("mp4-chunks", "25", [], AAC48, ext="mp4", mode="encode"),
]


def cut(folder: Path, src: Source) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pattern = mediacheck.sync_source_args(src.fps, SECONDS, flash=src.flash)
    maps = ["-map", "0:v"] + (["-map", "1:a"] if src.audio else [])
    fmt = "mp4" if src.ext == "mp4" else "mpegts"
    extra = ["-segment_format_options", "movflags=+faststart"] if src.ext == "mp4" else []
    subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-y", *pattern, *maps, *src.video, "-c:v", "libx264",
         "-preset", "veryfast", "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*2)",
         "-sc_threshold", "0", *src.audio, "-f", "segment", "-segment_time", "2", "-segment_format", fmt,
         *extra, "-reset_timestamps", "0", str(folder / f"%05d.{src.ext}")],
        check=True, timeout=300)
    return sorted(folder.glob(f"*.{src.ext}"))


def transcode_like_the_pipeline(chunks: list[Path], ladder: Ladder, out: Path) -> dict[int, TranscodeResult]:
    infos = [probe(str(c)) for c in chunks]
    base = infos[0].start_ticks  # the run's base: its first chunk's first frame
    results: dict[int, TranscodeResult] = {}
    for seq in ORDER[: len(chunks)]:
        info = infos[seq]
        start = info.start_ticks - base
        span = grid.video_span(start, start + info.end_ticks - info.start_ticks, ladder.frame_rate)
        prev, nxt = results.get(seq - 1), results.get(seq + 1)
        job = TranscodeJob(f"src-{seq}", seq, str(chunks[seq]), str(out), ladder, media_start=start / 90_000,
                           start_ticks=start, first_frame=span.first_frame, frames=span.frames,
                           audio_not_before=_audio_end(prev, ladder), audio_not_after=_audio_start(nxt, ladder),
                           preroll_path=str(chunks[seq - 1]) if seq > 0 else "")
        results[seq] = run(job)
    return results


def _audio(result: TranscodeResult | None, ladder: Ladder) -> object | None:
    if result is None:
        return None
    return next((o for o in result.outputs if o.rendition == ladder.audio.name), None)


def _audio_end(result: TranscodeResult | None, ladder: Ladder) -> int | None:
    a = _audio(result, ladder)
    return None if a is None else int(a.start_ticks) + int(a.duration_ticks)  # type: ignore[attr-defined]


def _audio_start(result: TranscodeResult | None, ladder: Ladder) -> int | None:
    a = _audio(result, ladder)
    return None if a is None else int(a.start_ticks)  # type: ignore[attr-defined]


def publish_plainly(results: dict[int, TranscodeResult], ladder: Ladder, root: Path) -> None:
    """The least a packager does: one media playlist per rendition, a master naming them."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
    audio = ladder.audio.name
    first = results[0]
    if any(o.rendition == audio for o in first.outputs):
        codec = next(o.codecs for o in first.outputs if o.rendition == audio)
        lines.append(f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="a",DEFAULT=YES,URI="{audio}/p.m3u8"')
    else:
        codec = ""
    for o in first.outputs:
        if o.rendition == audio:
            continue
        codecs = ",".join(c for c in (o.codecs, codec) if c)
        group = ',AUDIO="a"' if codec else ""
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS="{codecs}"{group}', f"{o.rendition}/p.m3u8"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvr.m3u8").write_text("\n".join(lines) + "\n")
    for o in first.outputs:
        folder = Path(o.init_path).parent
        body = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
                '#EXT-X-MAP:URI="init.mp4"']
        for seq in sorted(results):
            out = next(x for x in results[seq].outputs if x.rendition == o.rendition)
            body += [f"#EXTINF:{out.duration:.5f},", Path(out.segment_path).name]
        body.append("#EXT-X-ENDLIST")
        (folder / "p.m3u8").write_text("\n".join(body) + "\n")
        (root / o.rendition).symlink_to(folder)


@pytest.mark.parametrize("src", SOURCES, ids=[s.name for s in SOURCES])
def test_given_a_source_of_this_kind_then_chunks_transcoded_apart_play_as_one_encode(
        tmp_path: Path, src: Source) -> None:
    ladder = LADDERS[src.ladder]
    chunks = cut(tmp_path / "src", src)
    assert len(chunks) == SECONDS // 2, [c.name for c in chunks]
    results = transcode_like_the_pipeline(chunks, ladder, tmp_path / "out")
    assert {r.audio.mode for r in results.values() if r.audio is not None} == {src.mode}
    origin = tmp_path / "origin"
    publish_plainly(results, ladder, origin / "ch")
    report = mediacheck.check(lambda p: (origin / p).read_bytes(), "ch", segments=len(chunks))
    summary = report.summary()
    print(f"\n{src.name}: {summary['problems']} sync={report.sync_offsets_ms} av_start={summary['av_offset_ms']}")
    for t in report.tracks:
        assert (t.tfdt_gaps, t.tfdt_overlaps) == (0, 0), t
        assert t.decoded_units == t.expected_units, t
        assert t.codecs_advertised == t.codecs_bitstream, t
        if t.kind == "video":  # on the ladder's grid: every frame lasts exactly 1/fps, whatever the source did
            assert t.box_ticks * ladder.frame_rate == t.decoded_units * t.timescale, t
        else:
            assert t.dips == [], t
            assert t.boundaries_checked == len(chunks) - 1
    if src.sync:
        offsets = report.sync_offsets_ms
        assert len(offsets) >= SECONDS - 2, offsets
        frame_ms = 1000 / float(ladder.frame_rate)
        if src.sync == "exact":
            assert max(offsets) - min(offsets) < 1.0, offsets
            assert all(abs(o) < 1.0 for o in offsets), offsets
        else:  # the flash lands on the output frame nearest its time: within one output frame (+ a phone's
            # 8 ms jitter), and no drift
            assert all(abs(o) <= frame_ms + 10 for o in offsets), offsets
            assert max(offsets) - min(offsets) <= frame_ms + 10, offsets
    problems = report.problems()
    drift = report.av_sync_drift_ms
    if src.sync == "frame" and drift is not None and drift <= 1000 / float(ladder.frame_rate):
        # mediacheck's 1 ms drift rule does not apply across a frame-rate conversion: the flash moves by
        # up to one output frame as it is quantised onto the ladder's grid (the beep does not). Only that
        # finding, and only within one output frame, is excused.
        problems = [p for p in problems if not p.startswith("A/V sync drifts")]
    assert problems == []
