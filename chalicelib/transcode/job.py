"""One transcode job: a source chunk in, one segment per rendition out.

Contract (other areas code against it):
- output layout ``{output_dir}/{rendition}/init.mp4`` + ``{output_dir}/{rendition}/{seq:08d}.m4s``
  (CMAF, one track per file) or ``{seq:08d}.ts`` (container "ts", no init);
- video sits on the ladder's frame grid (chalicelib.media.grid): the segment holds grid frames
  [first_frame, first_frame + frames), tfdt = first_frame * frame_ticks (90 kHz); audio tfdt and
  length are those of `RenditionOutput.start_ticks` / `duration_ticks` (samples), the frames the
  audio plan gives the chunk (chalicelib.transcode.audio);
- init.mp4 is byte-identical for every chunk of a channel (normalised: CMAF brands, no bitrates), so
  any job may (re)write it, and the slate shares it;
- a retried job rewrites byte-identical outputs; outputs appear atomically (rename);
- scratch space lives in a per-job temp dir that is removed whatever happens.

How the timestamps get there (verified with ffprobe in tests/integration/transcode):
1. ffmpeg writes each rendition as its own fragmented MP4 starting at 0 (ffmpeg.ladder_args).
2. boxes.split cuts it into init (ftyp+moov) and fragments (moof+mdat); the init carries no sample
   tables, times, encoder strings or bitrates, so it is the same bytes for every chunk.
3. Audio: the plan's leading packets (AAC priming + pre-roll frames, or copied frames the previous
   segment already holds) are cut off and exactly `span.frames` frames are kept.
4. Video with B-frames: trun version 1 with signed composition offsets (boxes.present_at_decode_time)
   so the first picture is presented at tfdt, not two frames later (A/V sync).
5. Every tfdt becomes its grid position (64-bit), mfhd sequence numbers become seq * 64 + n, a CMAF
   styp is prefixed.
ffmpeg's own -output_ts_offset is used only for MPEG-TS, with a constant TS_PTS_OFFSET so the
priming frame and B-frame decode times stay positive.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass, replace

from ..errors import InvalidMediaError, TranscodeError, ValidationError
from ..media import grid
from ..media.ladder import VIDEO_TIMESCALE, Ladder
from . import audio as audio_plan
from . import boxes
from . import ffmpeg as _ffmpeg
from .ffmpeg import find_binary, ladder_args, output_path, run_process
from .probe import AudioInfo, MediaInfo, probe

LAMBDA_LIMIT = 900.0  # seconds: a job must give up before the Lambda is killed
# ffmpeg's native AAC encoder delays its output by one frame (avctx->initial_padding = 1024):
# the first packet decodes to the encoder's start-up transient, not to source audio. With
# empty_moov there is no edit list to hide it, so it is cut out of the fragment; then sample 0
# of the segment is source sample 0 and A/V sync is exact in every chunk.
AAC_PRIMING_SAMPLES = 1024
AAC_FRAME_SAMPLES = 1024  # AAC-LC
# Decoder/demuxer complaints about the *input* ("[h264 @ 0x..] [error] ..."): the chunk is bad.
_DECODE_ERROR_RE = re.compile(
    r"^(?:\[[av]ist#[^\]]*\] )?\[(?:dec:)?(?:h264|hevc|mpeg2video|mpeg4|aac|mp3|mp2|ac3|mpegts|mov,mp4[^ \]]*"
    r"|NULL|in#\d[^\]]*)[^\]]*\] \[(?:error|fatal)\] (.*)$",
    re.M,
)
# Fragments per chunk stay far below this, so mfhd sequence numbers never collide across chunks.
_FRAGMENTS_PER_CHUNK = 64


@dataclass(frozen=True)
class TranscodeJob:
    channel_id: str
    seq: int
    source_path: str
    output_dir: str
    ladder: Ladder
    media_start: float  # seconds on the run's media clock where this chunk's source video starts
    renditions: tuple[str, ...] = ()  # empty = every video rendition + audio
    splice_points: tuple[float, ...] = ()  # seconds from chunk start to force an IDR at
    timeout: float = 600.0
    # Placement decided at ingest (exact; None: derived from media_start and the probe the same way).
    start_ticks: int | None = None  # media_start in 90 kHz ticks
    first_frame: int | None = None  # grid frame of the first output frame
    frames: int | None = None  # output frames
    audio_mode: str = "auto"  # "auto" (copy when the source allows) | "copy" | "encode"
    audio_not_before: int | None = None  # samples the previous segment's audio already covers
    audio_not_after: int | None = None  # where the next segment's audio starts, when that is fixed
    preroll_path: str = ""  # the previous chunk's source: its audio tail primes a re-encode
    # A structural probe of `source_path` the caller already made (low-latency parts: ingest probes, then
    # transcodes in the same invocation); None: run() probes it.
    info: MediaInfo | None = None
    # The same for `preroll_path`'s audio (the predecessor's record); None: run() probes it.
    preroll_audio: AudioInfo | None = None

    def video_span(self, info: MediaInfo) -> grid.VideoSpan:
        if self.first_frame is not None and self.frames is not None:
            return grid.VideoSpan(self.first_frame, self.frames)
        start = self.start_ticks if self.start_ticks is not None else round(self.media_start * grid.TICKS)
        return grid.video_span(start, start + info.end_ticks - info.start_ticks, self.ladder.frame_rate)


@dataclass(frozen=True)
class Fragment:
    """A fragment inside a segment: for byte-range addressing of a splice point."""

    start: float  # media seconds on the channel timeline
    duration: float
    offset: int  # byte offset within the segment file
    size: int


@dataclass(frozen=True)
class RenditionOutput:
    rendition: str
    init_path: str  # "" for MPEG-TS
    segment_path: str
    duration: float  # seconds
    size: int  # segment bytes
    start: float = 0.0  # media seconds of the first sample (= job.media_start)
    fragments: tuple[Fragment, ...] = ()  # CMAF only; more than one where a splice point cut it
    # Same for every chunk of a channel: an uploader can skip an init that is already there,
    # and a differing one (ladder or ffmpeg build changed mid-channel) is a discontinuity.
    init_sha256: str = ""
    codecs: str = ""  # RFC 6381, read from the init's avcC / AudioSpecificConfig
    # Exact placement in the track's timescale (video: 90 kHz ticks, audio: samples).
    start_ticks: int = 0
    duration_ticks: int = 0
    # Video: one (byte offset, bytes, duration ticks) per IDR, for EXT-X-I-FRAMES-ONLY playlists.
    iframes: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class TranscodeResult:
    job: TranscodeJob
    info: MediaInfo
    outputs: tuple[RenditionOutput, ...]
    cpu_seconds: float  # user+system time of the ffmpeg children: probe + encode
    wall_seconds: float  # probe + encode + packaging
    video: grid.VideoSpan | None = None
    audio: audio_plan.AudioPlan | None = None
    audio_padded: int = 0  # samples of the kept audio the source did not cover (filled with silence)


def validate(job: TranscodeJob) -> tuple[str, ...]:
    """Check the job; return the renditions it produces, in ladder order."""
    if not isinstance(job.seq, int) or job.seq < 0:
        raise ValidationError(f"invalid chunk sequence {job.seq!r}")
    if not job.media_start >= 0:
        raise ValidationError(f"media_start must be >= 0, got {job.media_start!r}")
    if not 0 < job.timeout < LAMBDA_LIMIT:
        raise ValidationError(f"timeout {job.timeout!r} s must be in (0, {LAMBDA_LIMIT:g}) (the Lambda limit)")
    if job.ladder.container not in ("cmaf", "ts"):
        raise ValidationError(f"unknown container {job.ladder.container!r}; use 'cmaf' or 'ts'")
    unknown = [r for r in job.renditions if r not in job.ladder.names]
    if unknown:
        raise ValidationError(f"unknown renditions {unknown}; the ladder has {list(job.ladder.names)}")
    if any(not p > 0 for p in job.splice_points):
        raise ValidationError(f"splice points must be > 0 s into the chunk, got {list(job.splice_points)}")
    wanted = job.renditions or job.ladder.names
    return tuple(n for n in job.ladder.names if n in wanted)


def _write_atomic(path: str, data: bytes) -> None:
    """Write-then-rename: a reader (or a concurrent retry) never sees half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# A packaged rendition: its output record and the files (path -> bytes) to write.
_Packaged = tuple[RenditionOutput, dict[str, bytes]]


def _package_cmaf(job: TranscodeJob, name: str, workdir: str, video: grid.VideoSpan,
                  audio: audio_plan.AudioPlan | None) -> _Packaged:
    with open(output_path(workdir, name, "cmaf"), "rb") as f:
        data = f.read()
    parts = boxes.split(data)
    init = boxes.normalize_init(parts.init)
    scale = boxes.timescale(init)
    fragments = parts.fragments
    if name == job.ladder.audio.name:
        if scale != job.ladder.audio.sample_rate:
            raise TranscodeError(f"audio timescale {scale} != sample rate {job.ladder.audio.sample_rate}")
        assert audio is not None
        if len(fragments) != 1:
            raise TranscodeError(f"expected one audio fragment, found {len(fragments)}")
        have = len(boxes.samples(fragments[0], init))
        if have < audio.skip + audio.span.frames:
            raise TranscodeError(f"ffmpeg wrote {have} audio frames, the plan needs {audio.skip + audio.span.frames}")
        fragments = (boxes.slice_samples(fragments[0], audio.skip, audio.span.frames, init),)
        base = audio.span.start
    elif scale != VIDEO_TIMESCALE:
        raise TranscodeError(f"video timescale {scale} != {VIDEO_TIMESCALE}")
    else:
        fragments = boxes.present_at_decode_time(fragments, init)
        base = video.start(job.ladder.frame_rate)
    segment = boxes.media_segment(fragments, base, job.seq * _FRAGMENTS_PER_CHUNK + 1)
    infos = boxes.fragments_info(segment, init)
    folder = os.path.join(job.output_dir, name)
    init_path = os.path.join(folder, "init.mp4")
    segment_path = os.path.join(folder, f"{job.seq:08d}.m4s")
    total = sum(i.duration for i in infos)
    is_video = name != job.ladder.audio.name
    want = video.duration(job.ladder.frame_rate)
    if is_video and total != want:
        raise TranscodeError(f"{name}: {total} ticks of video, the grid span is {want}")
    output = RenditionOutput(
        rendition=name,
        init_path=init_path,
        segment_path=segment_path,
        duration=total / scale,
        size=len(segment),
        start=base / scale,
        fragments=tuple(Fragment(i.decode_time / scale, i.duration / scale, i.offset, i.size) for i in infos),
        init_sha256=hashlib.sha256(init).hexdigest(),
        codecs=boxes.codecs(init),
        start_ticks=base,
        duration_ticks=total,
        iframes=tuple((i.offset, i.first_sample_end, i.duration) for i in infos if i.starts_with_sync)
        if is_video else (),
    )
    return output, {init_path: init, segment_path: segment}


def _package_ts(job: TranscodeJob, name: str, workdir: str, video: grid.VideoSpan,
                audio: audio_plan.AudioPlan | None) -> _Packaged:
    with open(output_path(workdir, name, "ts"), "rb") as f:
        data = f.read()
    if not data:
        raise TranscodeError(f"ffmpeg wrote an empty {name} segment")
    segment_path = os.path.join(job.output_dir, name, f"{job.seq:08d}.ts")
    fps = job.ladder.frame_rate
    if name == job.ladder.audio.name and audio is not None:
        sr = job.ladder.audio.sample_rate
        start, ticks = audio.span.start, audio.span.duration
        seconds = ticks / sr
    else:
        start, ticks = video.start(fps), video.duration(fps)
        seconds = ticks / VIDEO_TIMESCALE
    output = RenditionOutput(name, "", segment_path, seconds, len(data),
                             start=video.start(fps) / VIDEO_TIMESCALE, start_ticks=start, duration_ticks=ticks)
    return output, {segment_path: data}


def _joined_audio(job: TranscodeJob, info: MediaInfo, workdir: str, ffmpeg: str) -> str:
    """The previous chunk followed by this one as one MPEG-TS file: the encoder's audio across the
    join, demuxed and decoded as one stream (two decodes spliced as PCM would leave the second one's
    first frame without its MDCT overlap partner: the very dip pre-roll is there to avoid). MPEG-TS
    chunks concatenate byte-wise; MP4 chunks are remuxed to MPEG-TS first (audio only, copy)."""
    parts = [job.preroll_path, job.source_path]
    if info.container == "mp4":
        remuxed = []
        for n, path in enumerate(parts):
            out = os.path.join(workdir, f"preroll-{n}.ts")
            proc = run_process([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-copyts", "-i", path,
                                "-map", "0:a:0", "-c", "copy", "-f", "mpegts", "-muxdelay", "0", out], timeout=60.0)
            if proc.returncode != 0:
                raise TranscodeError(f"cannot remux {os.path.basename(path)} for audio pre-roll: {proc.stderr[-300:]}")
            remuxed.append(out)
        parts = remuxed
    joined = os.path.join(workdir, "preroll.ts")
    with open(joined, "wb") as out_f:
        for path in parts:
            with open(path, "rb") as in_f:
                out_f.write(in_f.read())
    return joined


def run(job: TranscodeJob) -> TranscodeResult:
    """Probe, transcode and package one chunk. Raises InvalidMediaError / TranscodeError.

    Nothing is written to `job.output_dir` unless every rendition packaged cleanly, so a
    failed job leaves no half set of segments for the packager to pick up.
    """
    started = time.monotonic()
    names = validate(job)
    # Structural checks only (container, streams, sizes, packets): the ingest already ran the
    # full decode check, and this job's ffmpeg decodes every frame anyway; an error it reports
    # while decoding is turned into InvalidMediaError below, before anything is written.
    info = job.info if job.info is not None else probe(job.source_path, timeout=min(job.timeout, 120.0), decode=False)
    # A splice point at or past the chunk's real end belongs to the next chunk (the caller
    # computed it from a nominal duration): it is that chunk's frame 0, an IDR anyway. Failing
    # the chunk for it would turn an ad break into a gap.
    inside = tuple(p for p in job.splice_points if p < info.duration)
    ffmpeg = find_binary("ffmpeg")
    remaining = job.timeout - (time.monotonic() - started)
    video = job.video_span(info)
    start_ticks = job.start_ticks if job.start_ticks is not None else round(job.media_start * grid.TICKS)
    plan: audio_plan.AudioPlan | None = None
    preroll_info = None
    if job.ladder.audio.name in names:
        if job.preroll_path and job.preroll_audio is not None:
            preroll_info = job.preroll_audio
        elif job.preroll_path:
            try:
                preroll_info = probe(job.preroll_path, timeout=min(job.timeout, 60.0), decode=False).audio
            except InvalidMediaError:
                preroll_info = None  # a bad predecessor cannot prime the encoder: start cold
        plan = audio_plan.plan(job.ladder, info, start_ticks, video, not_before=job.audio_not_before,
                               not_after=job.audio_not_after, preroll=preroll_info, mode=job.audio_mode)
    with tempfile.TemporaryDirectory(prefix=f"slipstream-{job.channel_id}-{job.seq}-") as workdir:
        joined = ""
        if plan is not None and plan.preroll:
            joined = _joined_audio(job, info, workdir, ffmpeg)
        run_job = replace(job, renditions=names, splice_points=inside, preroll_path=joined)
        args = ladder_args(run_job, info, workdir, plan, video)
        # 4 KiB pages: a chunk's encoders would otherwise zero whole 2 MB huge pages in every process
        # (ffmpeg.run_process), a fixed cost per chunk that one long encode pays once.
        proc = run_process([ffmpeg, *args], timeout=max(remaining, 1.0), huge_pages=_ffmpeg.CHUNK_HUGE_PAGES)
        decode_errors = [m.group(1) for m in _DECODE_ERROR_RE.finditer(proc.stderr)]
        if decode_errors:
            name = os.path.basename(job.source_path)
            raise InvalidMediaError(f"{name}: corrupt or truncated media (decode error: {decode_errors[0][:200]})")
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise TranscodeError(f"ffmpeg failed on chunk {job.seq} (exit {proc.returncode}): {tail[:400]}")
        package = _package_ts if job.ladder.container == "ts" else _package_cmaf
        packaged = [package(job, name, workdir, video, plan) for name in names]
    for _, files in packaged:
        for path, data in files.items():
            _write_atomic(path, data)
    padded = 0
    if plan is not None and plan.mode == "encode" and info.audio is not None:
        sr = job.ladder.audio.sample_rate
        covered = grid.samples(start_ticks + info.audio.end_ticks - info.start_ticks, sr)
        padded = max(0, plan.span.end - covered)
    cpu = info.cpu_seconds + proc.cpu_seconds
    return TranscodeResult(job, info, tuple(o for o, _ in packaged), cpu, time.monotonic() - started,
                           video=video, audio=plan, audio_padded=padded)
