"""One transcode job: a source chunk in, one segment per rendition out.

Contract (other areas code against it):
- output layout ``{output_dir}/{rendition}/init.mp4`` + ``{output_dir}/{rendition}/{seq:08d}.m4s``
  (CMAF, one track per file) or ``{seq:08d}.ts`` (container "ts", no init);
- video tfdt = round(media_start * 90000), audio tfdt = round(media_start * sample_rate);
- init.mp4 is byte-identical for every chunk of a channel, so any job may (re)write it;
- a retried job rewrites byte-identical outputs; outputs appear atomically (rename);
- scratch space lives in a per-job temp dir that is removed whatever happens.

How the timestamps get there (verified with ffprobe in tests/integration/transcode):
1. ffmpeg writes each rendition as its own fragmented MP4 starting at 0 (ffmpeg.ladder_args:
   both streams shifted by the chunk's first video pts, video cut to whole frames, audio padded
   or trimmed to exactly the video length, empty_moov, bitexact, 90 kHz video timescale).
2. boxes.split cuts it into init (ftyp+moov) and fragments (moof+mdat). The init carries no
   sample tables, times or encoder strings, so it is the same bytes for every chunk.
3. Audio: the AAC encoder's priming frame (AAC_PRIMING_SAMPLES) is removed from the first
   fragment, so sample 0 is source sample 0; ffmpeg already shortens the last sample's duration
   to the real end, so a chunk is exactly chunk_duration * sample_rate samples long. Measured
   over 15 chunks: 0 samples of drift, no gaps (each chunk also re-anchors at media_start).
4. Video with B-frames: trun version 1 with signed composition offsets (boxes.present_at_decode_time)
   so the first picture is presented at tfdt, not two frames later (A/V sync).
5. Every tfdt becomes round(media_start * timescale) + its offset in the chunk (64-bit),
   mfhd sequence numbers become seq * 64 + n, a CMAF styp is prefixed.
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
from ..media.ladder import VIDEO_TIMESCALE, Ladder
from . import boxes
from .ffmpeg import find_binary, ladder_args, output_path, run_process
from .probe import MediaInfo, probe

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
    media_start: float  # seconds on the channel output timeline where this chunk starts
    renditions: tuple[str, ...] = ()  # empty = every video rendition + audio
    splice_points: tuple[float, ...] = ()  # seconds from chunk start to force an IDR at
    timeout: float = 600.0


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


@dataclass(frozen=True)
class TranscodeResult:
    job: TranscodeJob
    info: MediaInfo
    outputs: tuple[RenditionOutput, ...]
    cpu_seconds: float  # user+system time of the ffmpeg children: probe + encode
    wall_seconds: float  # probe + encode + packaging


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


def _package_cmaf(job: TranscodeJob, name: str, workdir: str, info: MediaInfo) -> _Packaged:
    with open(output_path(workdir, name, "cmaf"), "rb") as f:
        data = f.read()
    parts = boxes.split(data)
    scale = boxes.timescale(parts.init)
    fragments = parts.fragments
    if name == job.ladder.audio.name:
        if scale != job.ladder.audio.sample_rate:
            raise TranscodeError(f"audio timescale {scale} != sample rate {job.ladder.audio.sample_rate}")
        frames = AAC_PRIMING_SAMPLES // AAC_FRAME_SAMPLES
        fragments = (boxes.drop_leading_samples(fragments[0], frames), *fragments[1:])
    elif scale != VIDEO_TIMESCALE:
        raise TranscodeError(f"video timescale {scale} != {VIDEO_TIMESCALE}")
    else:
        fragments = boxes.present_at_decode_time(fragments, parts.init)
    base = round(job.media_start * scale)
    segment = boxes.media_segment(fragments, base, job.seq * _FRAGMENTS_PER_CHUNK + 1)
    infos = boxes.fragments_info(segment, parts.init)
    folder = os.path.join(job.output_dir, name)
    init_path = os.path.join(folder, "init.mp4")
    segment_path = os.path.join(folder, f"{job.seq:08d}.m4s")
    output = RenditionOutput(
        rendition=name,
        init_path=init_path,
        segment_path=segment_path,
        duration=sum(i.duration for i in infos) / scale,
        size=len(segment),
        start=base / scale,
        fragments=tuple(Fragment(i.decode_time / scale, i.duration / scale, i.offset, i.size) for i in infos),
        init_sha256=hashlib.sha256(parts.init).hexdigest(),
    )
    return output, {init_path: parts.init, segment_path: segment}


def _package_ts(job: TranscodeJob, name: str, workdir: str, info: MediaInfo) -> _Packaged:
    with open(output_path(workdir, name, "ts"), "rb") as f:
        data = f.read()
    if not data:
        raise TranscodeError(f"ffmpeg wrote an empty {name} segment")
    segment_path = os.path.join(job.output_dir, name, f"{job.seq:08d}.ts")
    frames = max(1, round(info.duration * job.ladder.frame_rate))  # what ladder_args cut it to
    output = RenditionOutput(name, "", segment_path, float(frames / job.ladder.frame_rate), len(data),
                             start=job.media_start)
    return output, {segment_path: data}


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
    info = probe(job.source_path, timeout=min(job.timeout, 120.0), decode=False)
    # A splice point at or past the chunk's real end belongs to the next chunk (the caller
    # computed it from a nominal duration): it is that chunk's frame 0, an IDR anyway. Failing
    # the chunk for it would turn an ad break into a gap.
    inside = tuple(p for p in job.splice_points if p < info.duration)
    ffmpeg = find_binary("ffmpeg")
    remaining = job.timeout - (time.monotonic() - started)
    with tempfile.TemporaryDirectory(prefix=f"slipstream-{job.channel_id}-{job.seq}-") as workdir:
        args = ladder_args(replace(job, renditions=names, splice_points=inside), info, workdir)
        proc = run_process([ffmpeg, *args], timeout=max(remaining, 1.0))
        decode_errors = [m.group(1) for m in _DECODE_ERROR_RE.finditer(proc.stderr)]
        if decode_errors:
            name = os.path.basename(job.source_path)
            raise InvalidMediaError(f"{name}: corrupt or truncated media (decode error: {decode_errors[0][:200]})")
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise TranscodeError(f"ffmpeg failed on chunk {job.seq} (exit {proc.returncode}): {tail[:400]}")
        package = _package_ts if job.ladder.container == "ts" else _package_cmaf
        packaged = [package(job, name, workdir, info) for name in names]
    for _, files in packaged:
        for path, data in files.items():
            _write_atomic(path, data)
    return TranscodeResult(job, info, tuple(o for o, _ in packaged), info.cpu_seconds + proc.cpu_seconds,
                           time.monotonic() - started)
