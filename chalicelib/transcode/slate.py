"""Slate: real media in the ladder's exact format for a slot whose chunk is missing, late or corrupt.

Rendered once per run (`render`, one ffmpeg: a still card + silence, encoded with the very settings
of the ladder, so its init segment is byte-identical to the channel's), then composed for any slot
in the box layer (`compose_video`, `compose_audio`: no ffmpeg at publish time):

- video: the template holds closed GOPs of 1, 2, 4, ... frames and two full GOPs (an IDR each), so
  any frame count up to `max_frames` is a sum of them; each composed segment starts on an IDR and
  its fragments get consecutive tfdt from the slot's start;
- audio: silent AAC frames are all alike, so a slot of M frames is one steady-state silent frame
  M times.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from ..errors import TranscodeError
from ..media.ladder import Ladder
from . import boxes
from .ffmpeg import (
    _muxer_args,
    _num,
    audio_encoder_args,
    find_binary,
    has_filter,
    output_path,
    run_process,
    video_encoder_args,
)

TEMPLATE = "slate.mp4"  # per rendition: init + fragments


def gop_lengths(ladder: Ladder) -> list[int]:
    """GOP lengths in the video template, largest first: two full GOPs, then powers of two below one."""
    g = ladder.gop_frames
    small = [1 << i for i in range(max(1, (g - 1).bit_length()))]
    return [g, g, *reversed([s for s in small if s < g])]


def max_frames(ladder: Ladder) -> int:
    return sum(gop_lengths(ladder))


@dataclass(frozen=True)
class Templates:
    files: dict[str, str]  # rendition -> path of its template (init + fragments)


def render(ladder: Ladder, output_dir: str, title: str = "", timeout: float = 120.0) -> Templates:
    """Encode the slate templates of every rendition (CMAF only) into `output_dir/{rendition}/slate.mp4`."""
    if ladder.container != "cmaf":
        raise TranscodeError("slate needs CMAF output; MPEG-TS ladders publish missing chunks as EXT-X-GAP")
    ffmpeg = find_binary("ffmpeg")
    fps = ladder.frame_rate
    lengths = gop_lengths(ladder)
    frames = sum(lengths)
    seconds = frames / fps
    starts, t = [], 0
    for n in lengths:
        starts.append(t)
        t += n
    keyframes = ",".join(_num(float(s / fps)) for s in starts)
    w = max(v.width for v in ladder.video)
    h = max(v.height for v in ladder.video)
    card = f"color=c=0x1b2330:size={w}x{h}:rate={fps}"
    if has_filter(ffmpeg, "drawtext"):
        text = (title or "Slipstream").replace("\\", "").replace("'", "").replace(":", " ")[:60]
        card += (f",drawtext=text='{text}':fontcolor=white:fontsize={h // 12}:x=(w-tw)/2:y=h/2-th,"
                 f"drawtext=text='We will be right back':fontcolor=0xc0c8d8:fontsize={h // 18}:x=(w-tw)/2:y=h/2+th")
    with tempfile.TemporaryDirectory(prefix="slipstream-slate-") as work:
        args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
                "-filter_complex_threads", "1", "-threads", "1",
                "-f", "lavfi", "-t", _num(float(seconds)), "-i", card,
                "-f", "lavfi", "-t", _num(float(seconds) + 1), "-i",
                f"anullsrc=r={ladder.audio.sample_rate}:cl={'stereo' if ladder.audio.channels == 2 else 'mono'}"]
        graph = [f"[0:v]trim=end_frame={frames},split={len(ladder.video)}" + "".join(f"[s{i}]" for i in
                                                                                     range(len(ladder.video)))]
        for i, r in enumerate(ladder.video):
            graph.append(f"[s{i}]scale={r.width}:{r.height}:flags=bicubic+accurate_rnd+bitexact,setsar=1,"
                         f"format=yuv420p[v{i}]")
        args += ["-filter_complex", ";".join(graph)]
        for i, r in enumerate(ladder.video):
            args += ["-map", f"[v{i}]", "-an", *video_encoder_args(ladder, r, keyframes)]
            args += _muxer_args(False, video=True)
            args.append(output_path(work, r.name, "cmaf"))
        args += ["-map", "1:a", "-vn", *audio_encoder_args(ladder), *_muxer_args(False, video=False),
                 output_path(work, ladder.audio.name, "cmaf")]
        proc = run_process(args, timeout=timeout, huge_pages=False)  # x264 in a short process: see run_process
        if proc.returncode != 0:
            raise TranscodeError(f"slate render failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        files: dict[str, str] = {}
        for name in ladder.names:
            with open(output_path(work, name, "cmaf"), "rb") as f:
                parts = boxes.split(f.read())
            init = boxes.normalize_init(parts.init)
            fragments = parts.fragments
            if name != ladder.audio.name:
                fragments = boxes.present_at_decode_time(fragments, init)
                got = [len(boxes.samples(fr, init)) for fr in fragments]
                if got != lengths:
                    raise TranscodeError(f"slate {name}: GOPs of {got} frames, wanted {lengths}")
            path = os.path.join(output_dir, name, TEMPLATE)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(init + b"".join(fragments))
            files[name] = path
    return Templates(files)


def compose_video(template: bytes, frames: int, base: int, first_sequence: int
                  ) -> tuple[bytes, tuple[tuple[int, int, int], ...]]:
    """A slate video segment of exactly `frames` frames from `base` (ticks); and its I-frame ranges."""
    parts = boxes.split(template)
    pool = sorted(parts.fragments, key=lambda fr: -len(boxes.samples(fr, parts.init)))
    chosen: list[bytes] = []
    left = frames
    for fr in pool:
        n = len(boxes.samples(fr, parts.init))
        if n <= left:
            chosen.append(fr)
            left -= n
        if not left:
            break
    if left or frames <= 0:
        raise TranscodeError(f"a slate of {frames} frames does not fit the template (at most {len(pool)} GOPs)")
    segment = boxes.sequential_segment(tuple(chosen), base, first_sequence, parts.init)
    infos = boxes.fragments_info(segment, parts.init)
    return segment, tuple((i.offset, i.first_sample_end, i.duration) for i in infos if i.starts_with_sync)


def compose_audio(template: bytes, frames: int, base: int, sequence: int) -> bytes:
    """A slate audio segment: `frames` silent AAC frames from `base` (samples)."""
    parts = boxes.split(template)
    items = boxes.samples(parts.fragments[0], parts.init)
    if len(items) < 4 or frames <= 0:
        raise TranscodeError(f"cannot make {frames} frames of slate audio from {len(items)} template frames")
    quiet = items[len(items) // 2]  # steady state: past the encoder's start-up frames
    silent = boxes.Sample(quiet.duration, quiet.size, None, 0, quiet.data)
    fragment = boxes.build_fragment([silent] * frames, 0, sequence)
    return boxes.media_segment((fragment,), base, sequence)


def template_init(template: bytes) -> bytes:
    return boxes.split(template).init
