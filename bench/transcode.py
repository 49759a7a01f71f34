"""Transcode cost: chunked jobs vs one raw ffmpeg over the whole source, in the same run.

Measures, for a synthetic source (testsrc2 + sine) cut into 2 s MPEG-TS chunks like the push
helper cuts them:
- ours: every chunk through chalicelib.transcode.run (one ffmpeg for the ladder + box surgery, given
  the probe ingest already made, as the worker gets it from the chunk's record), sequentially, CPU
  from the children's rusage; ingest's own probe (with the decode check) is reported beside it;
- baseline: one ffmpeg command producing the same ladder (same filter graph, encoder settings
  and fMP4 muxing) from the whole source at once: no per-chunk start-up, no probe. It runs twice, as
  the raw command and with transparent huge pages off like our jobs (ffmpeg.run_process), and the
  cheaper of the two is the denominator.
Repeats alternate which side runs first, so drift of a shared machine's speed cancels out.
Reports CPU-seconds per media-second and wall time per chunk as ratios ours / baseline (target
overhead <= 1.05), and the ladder's speed as x-realtime on one core (media s / CPU s).

Usage: python -m bench transcode   or   python -m bench.transcode [--ladder test] [--seconds 20]
(FFMPEG_PATH=... picks the ffmpeg build, e.g. the Lambda layer's static one.)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib.media.ladder import LADDERS, Ladder
from chalicelib.transcode import TranscodeJob, find_binary, probe, run
from chalicelib.transcode import ffmpeg as ffmpeg_module
from chalicelib.transcode.ffmpeg import ladder_args, run_process
from chalicelib.transcode.probe import MediaInfo, from_record, to_record

TARGET = 1.05  # issue #10: CPU per media-second <= 1.05 x one raw ffmpeg ladder command
CHUNK = 2.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _self_cpu_since(start: float) -> float:
    return _self_cpu() - start


def make_source(folder: Path, seconds: int, size: str, rate: int, channels: int = 2,
                audio_bitrate: int = 128_000) -> tuple[Path, list[Path]]:
    """The whole source (for the baseline) and its 2 s chunks (stream copy: identical frames). Stereo AAC
    48 kHz, what `slipstream push`, OBS and hardware encoders send (the ladder copies it); mono is
    re-encoded (the audio encode path, primed with the previous chunk as in the pipeline)."""
    whole = folder / "source.ts"
    subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", str(channels), "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-g", str(int(CHUNK * rate)), "-keyint_min",
         str(int(CHUNK * rate)), "-sc_threshold", "0", "-c:a", "aac", "-b:a", str(audio_bitrate), str(whole)],
        check=True, timeout=600,
    )
    subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-y", "-i", str(whole), "-c", "copy", "-f", "segment",
         "-segment_time", str(CHUNK), "-segment_format", "mpegts", str(folder / "chunk-%05d.ts")],
        check=True, timeout=600,
    )
    return whole, sorted(folder.glob("chunk-*.ts"))


def _baseline(ladder: Ladder, whole: Path, folder: Path, seconds: int, huge_pages: bool) -> tuple[float, float]:
    """One ffmpeg, the same ladder arguments, over the whole source: its CPU and wall seconds."""
    info = probe(str(whole), max_duration=seconds + 10)
    job = TranscodeJob("bench", 0, str(whole), str(folder / f"baseline-{huge_pages}"), ladder, 0.0,
                       renditions=ladder.names, timeout=850)
    os.makedirs(job.output_dir)
    argv = [find_binary("ffmpeg"), *ladder_args(job, info, job.output_dir)]
    base = run_process(argv, timeout=850, huge_pages=huge_pages)
    if base.returncode != 0:
        raise RuntimeError(f"baseline ffmpeg failed: {base.stderr[-500:]}")
    return base.cpu_seconds, base.wall_seconds


def _ours(ladder: Ladder, chunks: list[Path], folder: Path, reprobe: bool, audio: str, records: list[str],
          infos: list[MediaInfo], huge_pages: bool) -> tuple[float, list[float], set[str]]:
    """Every chunk as its own job (what each Lambda does), one after another: CPU seconds (the ffmpeg
    children and Python's own share), wall seconds per chunk, audio modes."""
    out = folder / f"ours-{huge_pages}"
    self0 = _self_cpu()
    cpu0 = _children_cpu()
    walls, modes = [], set()
    saved, ffmpeg_module.CHUNK_HUGE_PAGES = ffmpeg_module.CHUNK_HUGE_PAGES, huge_pages
    try:
        for seq, chunk in enumerate(chunks):
            # The start on the media clock ingest computes (the source's own timestamps) and, for re-encoded
            # audio, the previous chunk's source as pre-roll: what the worker hands the job.
            start = round(seq * CHUNK * 90_000 + infos[seq].start_ticks - infos[0].start_ticks)
            prev = seq > 0 and audio != "copy"
            result = run(TranscodeJob(
                "bench", seq, str(chunk), str(out), ladder, start / 90_000, start_ticks=start,
                info=None if reprobe else from_record(records[seq]),
                preroll_path=str(chunks[seq - 1]) if prev else "",
                preroll_audio=None if reprobe or not prev else infos[seq - 1].audio))
            walls.append(result.wall_seconds)
            modes.add(result.audio.mode if result.audio else "none")
    finally:
        ffmpeg_module.CHUNK_HUGE_PAGES = saved
    # Python's own share (box surgery, subprocess bookkeeping) is small but real: count it.
    return _children_cpu() - cpu0 + _self_cpu_since(self0), walls, modes


def measure(ladder: Ladder, seconds: int, size: str, reprobe: bool = False, audio: str = "copy",
            before: bool = False, reverse: bool = False) -> dict[str, Any]:
    """One paired run. The baseline runs twice, as the raw command (default process settings) and with
    transparent huge pages off as our jobs run, and the cheaper one is the denominator: a process setting
    that would help one long encode as well is not counted as a chunking gain. `before`: ours also runs
    the old way (huge pages on). `reverse`: the sides run in the opposite order (repeats alternate, so a
    drift of the machine's speed during a run does not favour one side)."""
    rate = int(ladder.frame_rate)
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        folder = Path(tmp)
        # 128 kb/s, or 3/4 of the ladder's copy ceiling where that is lower (the test ladder copies up to
        # 128 kb/s, and a 128k AAC encode lands just over it: "copy" would have re-encoded).
        bitrate = min(128_000, ladder.audio.copy_max_bitrate * 3 // 4)
        whole, chunks = make_source(folder, seconds, size, rate, channels=2 if audio == "copy" else 1,
                                    audio_bitrate=bitrate)
        # Ingest's probe of every chunk (with the decode check): a stage of its own, before the job. It
        # reaches the job through the chunk's record, as in the pipeline (worker.py: probe.from_record).
        ingest_cpu, records, infos = 0.0, [], []
        for chunk in chunks:
            probed = probe(str(chunk))
            ingest_cpu += probed.cpu_seconds
            records.append(to_record(probed))
            infos.append(probed)

        steps = ["base_raw", "base_4k", "ours", *(["ours_huge"] if before else [])]
        cpu: dict[str, float] = {}
        base_wall = 0.0
        walls: list[float] = []
        modes: set[str] = set()
        ours_wall = 0.0
        for step in reversed(steps) if reverse else steps:
            if step.startswith("base"):
                cpu[step], wall = _baseline(ladder, whole, folder, seconds, huge_pages=step == "base_raw")
                if step == "base_raw":
                    base_wall = wall
            else:
                t0 = time.perf_counter()
                cpu[step], w, m = _ours(ladder, chunks, folder, reprobe, audio, records, infos,
                                        huge_pages=step == "ours_huge")
                if step == "ours":
                    walls, modes, ours_wall = w, m, time.perf_counter() - t0

    base = min(cpu["base_raw"], cpu["base_4k"])
    ours_cpu = cpu["ours"]
    media = float(seconds)
    per_chunk_base_wall = base_wall * CHUNK / media
    result = {
        "media_seconds": media,
        "audio_modes": ",".join(sorted(modes)),
        "chunks": len(chunks),
        "baseline_cpu_per_media_s": base / media,
        "baseline_raw_cpu_per_media_s": cpu["base_raw"] / media,
        "baseline_4k_cpu_per_media_s": cpu["base_4k"] / media,
        "ours_cpu_per_media_s": ours_cpu / media,
        "cpu_ratio": ours_cpu / base,
        "baseline_wall_per_chunk": per_chunk_base_wall,
        "ours_wall_per_chunk": sum(walls) / len(walls),
        "wall_ratio": (ours_wall / len(chunks)) / per_chunk_base_wall,
        "fixed_cpu_per_chunk": (ours_cpu - base) / len(chunks),
        "ingest_probe_cpu_per_chunk": ingest_cpu / len(chunks),
        "with_ingest_probe_cpu_ratio": (ours_cpu + ingest_cpu) / base,
        "baseline_x_realtime_one_core": media / base,
        "ours_x_realtime_one_core": media / ours_cpu,
    }
    if before:
        result["huge_cpu_ratio"] = cpu["ours_huge"] / base
        result["huge_cpu_per_chunk"] = cpu["ours_huge"] / len(chunks)
        result["ours_cpu_per_chunk"] = ours_cpu / len(chunks)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="chunked transcode vs one raw ffmpeg")
    # The production ladder by default: the overhead target is about it. The test ladder is so
    # cheap (~0.12 CPU s per chunk) that per-process start-up dominates its ratio.
    parser.add_argument("--ladder", default="default", choices=sorted(LADDERS))
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--size", default="", help="source picture size (default: the ladder's top rung)")
    parser.add_argument("--preset", default="", help="override the ladder's x264 preset")
    parser.add_argument("--repeat", type=int, default=3,
                        help="paired runs (baseline and ours each time); the median ratio is the verdict, "
                             "since one run on a shared 2-core machine swings by +-7 %%")
    parser.add_argument("--audio", default="copy", choices=("copy", "encode"),
                        help="copy: stereo AAC 48 kHz source (the common case); encode: mono, re-encoded with "
                             "the previous chunk as pre-roll")
    parser.add_argument("--reprobe", action="store_true",
                        help="the job probes each chunk again instead of taking ingest's probe (the old way)")
    parser.add_argument("--before", action="store_true",
                        help="ours also runs the old way (encoders on transparent huge pages), in the same run")
    args = parser.parse_args(argv if argv is not None else [])
    ladder = LADDERS[args.ladder]
    if args.preset:
        ladder = replace(ladder, preset=args.preset)
    top = max(ladder.video, key=lambda r: r.width * r.height)
    size = args.size or f"{top.width}x{top.height}"
    # Repeats alternate the order of the sides (baseline first, then ours first): machine drift cancels.
    runs = sorted((measure(ladder, args.seconds, size, args.reprobe, args.audio, args.before, reverse=n % 2 == 1)
                   for n in range(max(1, args.repeat))), key=lambda x: x["cpu_ratio"])
    r = runs[len(runs) // 2]
    if len(runs) > 1:
        ratios = [x["cpu_ratio"] for x in runs]
        print(f"{len(runs)} paired runs: CPU ratio min {ratios[0]:.3f} median {r['cpu_ratio']:.3f} max {ratios[-1]:.3f}"
              f" (the median run is reported below)")
    if args.before:
        old = sorted(x["huge_cpu_ratio"] for x in runs)
        print(f"  the old way (huge pages) in the same runs: CPU ratio min {old[0]:.3f} median "
              f"{old[len(old) // 2]:.3f} max {old[-1]:.3f}; CPU s per chunk, each run: " + ", ".join(
                  f"{x['huge_cpu_per_chunk']:.3f} -> {x['ours_cpu_per_chunk']:.3f}" for x in runs))
    print("baseline CPU s per media s, each run (raw command / 4 KiB pages; the cheaper is the denominator): "
          + ", ".join(f"{x['baseline_raw_cpu_per_media_s']:.3f}/{x['baseline_4k_cpu_per_media_s']:.3f}" for x in runs))
    print(f"ladder={args.ladder} ({', '.join(ladder.names)}) preset={ladder.preset} source={size}@"
          f"{ladder.frame_rate} {r['media_seconds']:.0f}s in {r['chunks']:.0f} chunks, audio {r['audio_modes']}"
          f"{' (the job probes again)' if args.reprobe else ''}")
    print(f"CPU s per media s: ours {r['ours_cpu_per_media_s']:.3f}  baseline {r['baseline_cpu_per_media_s']:.3f}"
          f"  ratio {r['cpu_ratio']:.3f} (target <= {TARGET})  {'OK' if r['cpu_ratio'] <= TARGET else 'OVER'}")
    print(f"fixed cost per chunk (probe, process and encoder start-up): {r['fixed_cpu_per_chunk']:.3f} CPU s; "
          f"the ratio meets the target once a chunk's ladder costs >= "
          f"{r['fixed_cpu_per_chunk'] / (TARGET - 1):.2f} CPU s")
    print(f"ingest's probe (decode check, its own stage; the job reuses it): {r['ingest_probe_cpu_per_chunk']:.3f}"
          f" CPU s per chunk; ingest probe + transcode vs baseline: {r['with_ingest_probe_cpu_ratio']:.3f}")
    print(f"wall s per chunk:  ours {r['ours_wall_per_chunk']:.3f}  baseline {r['baseline_wall_per_chunk']:.3f}"
          f"  ratio {r['wall_ratio']:.3f}")
    print(f"ladder speed on one core: ours {r['ours_x_realtime_one_core']:.2f}x realtime, "
          f"baseline {r['baseline_x_realtime_one_core']:.2f}x realtime")
    print(f"ffmpeg: {find_binary('ffmpeg')} (set FFMPEG_PATH to bench another build, e.g. the layer's)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
