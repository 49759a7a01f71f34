"""Finding and running ffmpeg, and the pure argument builder for one transcode job.

One process per job decodes the chunk once and encodes every requested rendition: the decoded
frames go through ``fps`` (constant output rate) and ``split``, then one ``scale`` per rendition
(``filter_complex``), so decode cost is paid once however tall the ladder is. Every rendition
gets the same forced IDR times (0 and each splice point) with a closed GOP of one segment, which
is what makes segment boundaries line up across renditions and across chunks.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from ..errors import TranscodeError
from ..media import grid
from ..media.grid import VideoSpan
from ..media.ladder import VIDEO_TIMESCALE, Ladder, VideoRendition

if TYPE_CHECKING:
    from .audio import AudioPlan
    from .job import TranscodeJob
    from .probe import MediaInfo

LAYER_BIN = "/opt/bin"  # where a Lambda layer's bin/ is mounted
INSTALL_HINT = "apt-get install ffmpeg (or pip install imageio-ffmpeg, or attach the ffmpeg layer)"
# MPEG-TS cannot carry negative timestamps, and the AAC priming frame (and B-frame decode
# times) sit before media_start; a constant offset keeps them positive in every chunk.
TS_PTS_OFFSET = 10.0
# Retries must rewrite byte-identical segments. x264 with frame threads and VBV is NOT
# deterministic (rate control reads the state of frames still encoding in other threads;
# measured: three runs, three different 360p segments), so x264 runs sliced threads: each
# frame is cut into X264_THREADS slices encoded in parallel, deterministic, and without the
# frame-thread delay. The count is fixed, not taken from the machine, because the slice
# layout is part of the bitstream: a retry on a Lambda of another size gives the same bytes.
X264_THREADS = 2
# prctl(2) option: the child's memory is never backed by transparent huge pages (kept across execve).
_PR_SET_THP_DISABLE = 41
# A chunk's encode runs with 4 KiB pages (see run_process); bench.transcode --huge-pages flips it to compare.
CHUNK_HUGE_PAGES = False


class FFmpegNotFoundError(TranscodeError):
    """No ffmpeg/ffprobe binary could be found."""


def find_binary(name: str) -> str:
    """Path of `name` ("ffmpeg" or "ffprobe").

    Order: env override (FFMPEG_PATH / FFPROBE_PATH), the Lambda layer (/opt/bin), PATH, and for
    ffmpeg the static build shipped by the imageio-ffmpeg wheel.
    """
    if name not in ("ffmpeg", "ffprobe"):
        raise ValueError(f"unknown binary {name!r}")
    override = os.environ.get(f"{name.upper()}_PATH", "")
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise FFmpegNotFoundError(f"{name.upper()}_PATH={override} is not an executable file")
    layer = os.path.join(LAYER_BIN, name)
    if os.path.isfile(layer) and os.access(layer, os.X_OK):
        return layer
    found = shutil.which(name)
    if found:
        return found
    if name == "ffmpeg":
        try:
            import imageio_ffmpeg

            exe = str(imageio_ffmpeg.get_ffmpeg_exe())
            if os.path.isfile(exe):
                return exe
        except (ImportError, RuntimeError):
            pass
    raise FFmpegNotFoundError(f"{name} not found in ${name.upper()}_PATH, {LAYER_BIN} or PATH: {INSTALL_HINT}")


@functools.cache
def has_filter(ffmpeg: str, name: str) -> bool:
    """Does this ffmpeg build have filter `name` (drawtext needs libfreetype, not in every build)?"""
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stderr: str
    cpu_seconds: float  # user + system of the child (all its threads)
    wall_seconds: float
    stdout: str = ""


@functools.cache
def _thp_disabler() -> Callable[[], None] | None:
    """A function that turns transparent huge pages off for the calling process (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def disable() -> None:
        prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)  # failure (an old kernel) only means huge pages stay on

    return disable


def run_process(args: list[str], *, timeout: float, stdout: bool = False, huge_pages: bool = True) -> ProcessResult:
    """Run a child, killing it at `timeout`; measure its own CPU time with wait4.

    wait4 (not RUSAGE_CHILDREN) so that jobs running concurrently in threads of one process
    each get their own child's CPU time. Output goes to temp files: no pipe to deadlock on.

    ``huge_pages=False`` starts the child with transparent huge pages off (prctl PR_SET_THP_DISABLE, set
    between fork and exec). What it is for: x264 madvises every buffer of >= ~2 MB (frames, look-ahead,
    MB-tree) as MADV_HUGEPAGE, so each first touch makes the kernel zero a whole 2 MB page, used or not.
    A long encode pays that once; a chunk's ffmpeg pays it in every process. Measured on the 2-core
    dev VM, default ladder, one 2 s chunk: 0.3-0.6 CPU s of kernel page zeroing per process (more when
    the host has to back fresh guest memory), gone with 4 KiB pages, and no user-time cost seen.
    """
    preexec = None if huge_pages else _thp_disabler()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.monotonic()
        try:
            # preexec_fn runs in the forked child before exec: only a prepared ctypes call (no import,
            # no lock), which is safe even with other threads in the parent.
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out if stdout else subprocess.DEVNULL,
                                    stderr=err, preexec_fn=preexec)
        except OSError as exc:
            raise FFmpegNotFoundError(f"cannot run {args[0]}: {exc.strerror}: {INSTALL_HINT}") from None
        deadline = start + timeout
        delay = 0.002
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() >= deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise TranscodeError(f"{os.path.basename(args[0])} timed out after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return ProcessResult(proc.returncode, stderr, usage.ru_utime + usage.ru_stime, wall, text)


def _num(value: float) -> str:
    """Seconds for an ffmpeg argument: fixed precision so argv (and outputs) are reproducible."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _level(level_idc: int) -> str:
    return f"{level_idc // 10}.{level_idc % 10}"


def output_path(workdir: str, rendition: str, container: str) -> str:
    return os.path.join(workdir, f"{rendition}.{'ts' if container == 'ts' else 'mp4'}")


def ladder_args(job: TranscodeJob, info: MediaInfo, workdir: str = "", audio: AudioPlan | None = None,
                video: VideoSpan | None = None) -> list[str]:
    """ffmpeg arguments (without the binary) that encode `job`'s renditions from one decode.

    Video: the chunk's frames are mapped onto the ladder's frame grid (media.grid): input frames are
    shifted so that output frame i is grid frame `video.first_frame + i`, ``fps`` picks the source
    frame for every grid slot (any source rate, VFR included), and exactly `video.frames` frames are
    kept. Audio follows `audio` (chalicelib.transcode.audio): the encoder's AAC stream-copied, or
    re-encoded from a sample-exact input window (previous chunk's tail first when pre-rolled), or
    silence. The CMAF outputs start at 0; chalicelib.transcode.boxes moves them onto the channel
    clock and cuts audio to the frames the segment holds. MPEG-TS outputs get their clock from
    ``-output_ts_offset``.
    """
    from .audio import plan as plan_audio

    workdir = workdir or job.output_dir
    ladder = job.ladder
    fps = ladder.frame_rate
    wanted = job.renditions or ladder.names
    videos = [r for r in ladder.video if r.name in wanted]
    want_audio = ladder.audio.name in wanted
    start_ticks = job.start_ticks if job.start_ticks is not None else round(job.media_start * grid.TICKS)
    span = video or job.video_span(info)
    if want_audio and audio is None:
        audio = plan_audio(ladder, info, start_ticks, span, not_before=job.audio_not_before,
                           not_after=job.audio_not_after, mode=job.audio_mode)
    ts = ladder.container == "ts"
    v0 = Fraction(info.start_ticks, grid.TICKS)  # the chunk's first video pts, source seconds
    media0 = Fraction(start_ticks, grid.TICKS)  # ... and where that sits on the run's media clock
    grid0 = Fraction(span.start(fps), grid.TICKS)  # where the chunk's first output frame sits

    # One decoder thread and no filter thread pool: a 2 s chunk decodes in a fraction of the
    # encode time, and thread start-up is a measurable share of a chunk's CPU (~6 %).
    args = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "repeat+level+warning", "-y",
            "-filter_complex_threads", "1", "-threads", "1", "-copyts", "-i", job.source_path]
    second = ""
    if want_audio and audio is not None and audio.mode == "silence":
        args += ["-f", "lavfi", "-t", _num(float(Fraction(audio.input_samples, ladder.audio.sample_rate))),
                 "-i", f"anullsrc=r={ladder.audio.sample_rate}:cl=stereo"]
        second = "[1:a:0]"
    elif want_audio and audio is not None and audio.preroll and job.preroll_path:
        # `preroll_path` here is the previous chunk joined with this one (job.run prepares it).
        args += ["-threads", "1", "-copyts", "-i", job.preroll_path]
        second = "[1:a:0]"

    graph: list[str] = []
    if videos:
        split = "".join(f"[s{i}]" for i in range(len(videos)))
        # Shift so that time 0 is the chunk's first grid frame: the source frame at media time m lands
        # in output slot round((m - grid0) * fps). tpad clones the last picture twice (the fps filter
        # drops a final frame whose duration it cannot infer), trim keeps exactly the span's frames.
        shift = v0 + grid0 - media0
        graph.append(
            f"[0:v:0]setpts=PTS-{_frac(shift)}/TB,tpad=stop_mode=clone:stop=2,fps={fps}:start_time=0,"
            f"trim=end_frame={span.frames},setpts=PTS-STARTPTS,split={len(videos)}{split}"
        )
        for i, r in enumerate(videos):
            graph.append(
                # bitexact: swscale's SIMD paths differ by CPU; Lambda hosts differ too.
                # Another aspect ratio is letterboxed, never stretched; even sizes for 4:2:0.
                f"[s{i}]scale={r.width}:{r.height}:force_original_aspect_ratio=decrease:force_divisible_by=2:"
                "flags=bicubic+accurate_rnd+bitexact,"
                f"pad={r.width}:{r.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v{i}]"
            )
    encode_audio = want_audio and audio is not None and audio.mode != "copy"
    if encode_audio and audio is not None:
        graph.append(_audio_graph(ladder, audio, second))
    if graph:
        args += ["-filter_complex", ";".join(graph)]

    # Splice points are seconds from the chunk's media start; keyframes count from its first grid frame.
    keyframes = ",".join(["0", *(_num(p - float(grid0 - media0)) for p in job.splice_points
                                 if p - float(grid0 - media0) > 0)])
    for i, r in enumerate(videos):
        args += ["-map", f"[v{i}]", "-an", *video_encoder_args(ladder, r, keyframes)]
        args += _muxer_args(ts, video=True, offset=grid0)
        args.append(output_path(workdir, r.name, ladder.container))
    if want_audio and audio is not None:
        if audio.mode == "copy":
            args += ["-map", "0:a:0", "-vn", "-c:a", "copy"]
            if not ts:
                args += ["-bsf:a", "aac_adtstoasc"]  # ADTS (MPEG-TS) -> raw AAC + AudioSpecificConfig
            # MPEG-TS: the copied packets keep their offset to the chunk's first video pts.
            args += _muxer_args(ts, video=False, offset=media0, copy=True, v0=v0)
        else:
            args += ["-map", "[a0]", "-vn", *audio_encoder_args(ladder)]
            if ts:  # no box layer to cut the look-ahead frames off (they would overlap the next chunk):
                # the priming packet (kept, see audio._encoded) and the span's frames only
                args += ["-frames:a", str(audio.skip + 1 + audio.span.frames)]
            first = Fraction(audio.input_start, ladder.audio.sample_rate)
            args += _muxer_args(ts, video=False, offset=first)
        args.append(output_path(workdir, ladder.audio.name, ladder.container))
    return args


def _audio_graph(ladder: Ladder, audio: AudioPlan, second: str) -> str:
    """The encoder's input: exactly `audio.input_samples` samples starting at media sample
    `audio.input_start` (silence where the source has none), at the ladder's rate and layout.

    Cut and padded by sample count, not by timestamps: the decoded stream's first sample sits at media
    sample `audio.decoded_from` (its first packet's pts), so after resampling the window starts
    `input_start - decoded_from` samples in (trimmed) or that many samples before it (padded with
    silence). aresample's own first_pts compensation drifted by 13-16 ms when it had to pad."""
    a = ladder.audio
    sr = a.sample_rate
    layout = "stereo" if a.channels == 2 else ("mono" if a.channels == 1 else f"{a.channels}c")
    tail = (f"atrim=end_sample={audio.input_samples},apad=whole_len={audio.input_samples},"
            f"asetpts=N/SR/TB[a0]")
    if audio.mode == "silence":
        return f"{second}aresample={sr},aformat=sample_fmts=fltp:channel_layouts={layout},{tail}"
    # With pre-roll the audio comes from the previous chunk and this one joined into one stream (input 1,
    # see job.run): decoded in one go, so the decoder is never cold at the join either.
    src = second if audio.preroll and second else "[0:a:0]"
    offset = audio.input_start - audio.decoded_from
    cut = f"atrim=start_sample={offset}," if offset > 0 else (f"adelay=delays={-offset}S:all=1," if offset < 0 else "")
    return (f"{src}aresample={sr},aformat=sample_fmts=fltp:channel_layouts={layout},asetpts=N/SR/TB,"
            f"{cut}asetpts=N/SR/TB,{tail}")


def video_encoder_args(ladder: Ladder, r: VideoRendition, keyframes: str) -> list[str]:
    """x264 settings of one rendition: the same for every chunk and for the slate (the init segment,
    SPS/PPS included, must be byte-identical across them)."""
    fps = ladder.frame_rate
    gop = str(ladder.gop_frames)
    return [
        "-c:v", "libx264", "-preset", ladder.preset, "-profile:v", r.profile,
        "-level:v", _level(r.level(fps)), "-pix_fmt", "yuv420p",
        "-b:v", str(r.bitrate), "-maxrate", str(r.max_bitrate), "-bufsize", str(r.buffer_size),
        # Closed GOP of one segment, no scene-cut IDRs: identical boundaries in every rendition.
        "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-flags:v", "+cgop+bitexact",
        "-forced-idr", "1", "-force_key_frames", keyframes,
        "-threads:v", str(X264_THREADS), "-x264-params", "sliced-threads=1",
    ]


def audio_encoder_args(ladder: Ladder) -> list[str]:
    a = ladder.audio
    return ["-c:a", "aac", "-profile:a", "aac_low", "-b:a", str(a.bitrate),
            "-ar", str(a.sample_rate), "-ac", str(a.channels), "-flags:a", "+bitexact"]


def _frac(x: Fraction) -> str:
    """An exact rational for an ffmpeg expression (setpts evaluates it in double precision)."""
    return f"({x.numerator}/{x.denominator})" if x.denominator != 1 else str(x.numerator)


def _round(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _muxer_args(ts: bool, *, video: bool, offset: Fraction = Fraction(0), copy: bool = False,
                v0: Fraction = Fraction(0)) -> list[str]:
    common = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact"]
    if ts:
        # Copied packets keep their source pts (-copyts): shift them by -v0 onto the media clock.
        shift = offset - v0 if copy else offset
        return [*common, "-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0",
                "-output_ts_offset", _num(float(shift) + TS_PTS_OFFSET)]
    # Fragmented MP4 starting at 0. empty_moov keeps sample tables out of the init segment, so
    # it is the same bytes for every chunk; default_base_moof is what CMAF requires. Video is
    # cut into a fragment at every IDR (so a splice point starts a fragment); audio is one
    # fragment per chunk (frag_custom: flushed only at the end) instead of one per AAC frame.
    flags = "+empty_moov+default_base_moof+negative_cts_offsets+skip_trailer"
    # delay_moov: the AudioSpecificConfig of copied ADTS audio exists only after the first packet.
    flags += "+frag_keyframe" if video else "+frag_custom+delay_moov"
    args = [*common, "-f", "mp4", "-movflags", flags, "-use_editlist", "0", "-avoid_negative_ts", "disabled"]
    if video:
        args += ["-video_track_timescale", str(VIDEO_TIMESCALE)]
    return args
