"""Finding and running ffmpeg, and the pure argument builder for one transcode job.

One process per job decodes the chunk once and encodes every requested rendition: the decoded
frames go through ``fps`` (constant output rate) and ``split``, then one ``scale`` per rendition
(``filter_complex``), so decode cost is paid once however tall the ladder is. Every rendition
gets the same forced IDR times (0 and each splice point) with a closed GOP of one segment, which
is what makes segment boundaries line up across renditions and across chunks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import TranscodeError
from ..media.ladder import VIDEO_TIMESCALE

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stderr: str
    cpu_seconds: float  # user + system of the child (all its threads)
    wall_seconds: float
    stdout: str = ""


def run_process(args: list[str], *, timeout: float, stdout: bool = False) -> ProcessResult:
    """Run a child, killing it at `timeout`; measure its own CPU time with wait4.

    wait4 (not RUSAGE_CHILDREN) so that jobs running concurrently in threads of one process
    each get their own child's CPU time. Output goes to temp files: no pipe to deadlock on.
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out if stdout else subprocess.DEVNULL,
                                    stderr=err)
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


def ladder_args(job: TranscodeJob, info: MediaInfo, workdir: str = "") -> list[str]:
    """ffmpeg arguments (without the binary) that encode `job`'s renditions from one decode.

    Timestamps: input timestamps are kept (-copyts) and both streams are shifted by the first
    video pts, so audio keeps its offset to video; ``aresample`` pads/trims the audio to start
    at exactly 0 and ``atrim``/``apad`` make it exactly as long as the video. The output starts
    at 0; chalicelib.transcode.boxes moves it to `job.media_start` (CMAF) while for MPEG-TS
    ``-output_ts_offset`` does it.
    """
    workdir = workdir or job.output_dir
    ladder = job.ladder
    fps = ladder.frame_rate
    wanted = job.renditions or ladder.names
    videos = [r for r in ladder.video if r.name in wanted]
    want_audio = ladder.audio.name in wanted
    # Output length in whole ladder frames, so video and audio end at the same instant.
    frames = max(1, round(info.duration * fps))
    duration = float(frames / fps)
    v0 = _num(info.start_time)
    ts = ladder.container == "ts"

    # One decoder thread and no filter thread pool: a 2 s chunk decodes in a fraction of the
    # encode time, and thread start-up is a measurable share of a chunk's CPU (~6 %).
    args = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "repeat+level+warning", "-y",
            "-filter_complex_threads", "1", "-threads", "1", "-copyts", "-i", job.source_path]
    silent_input = want_audio and not info.has_audio
    if silent_input:
        # A chunk without audio still needs an audio segment, or the audio playlist has a hole.
        args += ["-f", "lavfi", "-t", _num(duration), "-i",
                 f"anullsrc=r={ladder.audio.sample_rate}:cl=stereo"]

    graph: list[str] = []
    if videos:
        split = "".join(f"[s{i}]" for i in range(len(videos)))
        # tpad clones the last picture twice: the fps filter drops a final frame whose duration
        # it cannot infer (MP4 chunks), and trim then cuts to exactly `frames` pictures.
        graph.append(
            f"[0:v:0]setpts=PTS-{v0}/TB,tpad=stop_mode=clone:stop=2,fps={fps},trim=end_frame={frames},"
            f"split={len(videos)}{split}"
        )
        for i, r in enumerate(videos):
            graph.append(
                # bitexact: swscale's SIMD paths differ by CPU; Lambda hosts differ too.
                # Another aspect ratio is letterboxed, never stretched; even sizes for 4:2:0.
                f"[s{i}]scale={r.width}:{r.height}:force_original_aspect_ratio=decrease:force_divisible_by=2:"
                "flags=bicubic+accurate_rnd+bitexact,"
                f"pad={r.width}:{r.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v{i}]"
            )
    if want_audio:
        a = ladder.audio
        src = "[1:a:0]" if silent_input else f"[0:a:0]asetpts=PTS-{v0}/TB,"
        graph.append(
            f"{src}aresample={a.sample_rate}:async=1:first_pts=0,"
            f"atrim=end={_num(duration)},apad=whole_dur={_num(duration)}[a0]"
        )
    args += ["-filter_complex", ";".join(graph)]

    keyframes = ",".join(["0", *(_num(p) for p in job.splice_points)])
    gop = str(ladder.gop_frames)
    for i, r in enumerate(videos):
        args += [
            "-map", f"[v{i}]", "-an",
            "-c:v", "libx264", "-preset", ladder.preset, "-profile:v", r.profile,
            "-level:v", _level(r.level(fps)), "-pix_fmt", "yuv420p",
            "-b:v", str(r.bitrate), "-maxrate", str(r.max_bitrate), "-bufsize", str(r.buffer_size),
            # Closed GOP of one segment, no scene-cut IDRs: identical boundaries in every rendition.
            "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-flags:v", "+cgop+bitexact",
            "-forced-idr", "1", "-force_key_frames", keyframes,
            "-threads:v", str(X264_THREADS), "-x264-params", "sliced-threads=1",
        ]
        args += _muxer_args(job, ts, video=True)
        args.append(output_path(workdir, r.name, ladder.container))
    if want_audio:
        a = ladder.audio
        args += [
            "-map", "[a0]", "-vn",
            "-c:a", "aac", "-profile:a", "aac_low", "-b:a", str(a.bitrate),
            "-ar", str(a.sample_rate), "-ac", str(a.channels), "-flags:a", "+bitexact",
        ]
        args += _muxer_args(job, ts, video=False)
        args.append(output_path(workdir, a.name, ladder.container))
    return args


def _muxer_args(job: TranscodeJob, ts: bool, *, video: bool) -> list[str]:
    common = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact"]
    if ts:
        return [*common, "-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0",
                "-output_ts_offset", _num(job.media_start + TS_PTS_OFFSET)]
    # Fragmented MP4 starting at 0. empty_moov keeps sample tables out of the init segment, so
    # it is the same bytes for every chunk; default_base_moof is what CMAF requires. Video is
    # cut into a fragment at every IDR (so a splice point starts a fragment); audio is one
    # fragment per chunk (frag_custom: flushed only at the end) instead of one per AAC frame.
    flags = "+empty_moov+default_base_moof+negative_cts_offsets+skip_trailer"
    flags += "+frag_keyframe" if video else "+frag_custom"
    args = [*common, "-f", "mp4", "-movflags", flags, "-use_editlist", "0", "-avoid_negative_ts", "disabled"]
    if video:
        args += ["-video_track_timescale", str(VIDEO_TIMESCALE)]
    return args
