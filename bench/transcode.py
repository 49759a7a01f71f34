"""Transcode cost: chunked jobs vs one raw ffmpeg over the whole source, in the same run.

Measures, for a synthetic source (testsrc2 + sine) cut into 2 s MPEG-TS chunks like the push
helper cuts them:
- ours: every chunk through chalicelib.transcode.run (one ffmpeg for the ladder + box surgery, given
  the probe ingest already made, as the worker gets it from the chunk's record), sequentially, CPU
  from the children's rusage; ingest's own probe (with the decode check) is reported beside it;
- baseline: one ffmpeg command producing the same ladder (same filter graph, encoder settings
  and fMP4 muxing) from the whole source at once: no per-chunk start-up, no probe.
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

from chalicelib.media.ladder import LADDERS, Ladder
from chalicelib.transcode import TranscodeJob, find_binary, probe, run
from chalicelib.transcode.ffmpeg import ladder_args, run_process
from chalicelib.transcode.probe import from_record, to_record

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


def make_source(folder: Path, seconds: int, size: str, rate: int) -> tuple[Path, list[Path]]:
    """The whole source (for the baseline) and its 2 s chunks (stream copy: identical frames)."""
    whole = folder / "source.ts"
    subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-g", str(int(CHUNK * rate)), "-keyint_min",
         str(int(CHUNK * rate)), "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k", str(whole)],
        check=True, timeout=600,
    )
    subprocess.run(
        [find_binary("ffmpeg"), "-v", "error", "-y", "-i", str(whole), "-c", "copy", "-f", "segment",
         "-segment_time", str(CHUNK), "-segment_format", "mpegts", str(folder / "chunk-%05d.ts")],
        check=True, timeout=600,
    )
    return whole, sorted(folder.glob("chunk-*.ts"))


def measure(ladder: Ladder, seconds: int, size: str) -> dict[str, float]:
    rate = int(ladder.frame_rate)
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        folder = Path(tmp)
        whole, chunks = make_source(folder, seconds, size, rate)

        # Baseline: one ffmpeg, the same ladder arguments, over the whole source.
        info = probe(str(whole), max_duration=seconds + 10)
        job = TranscodeJob("bench", 0, str(whole), str(folder / "baseline"), ladder, 0.0,
                           renditions=ladder.names, timeout=850)
        os.makedirs(job.output_dir)
        argv = [find_binary("ffmpeg"), *ladder_args(job, info, job.output_dir)]
        base = run_process(argv, timeout=850)
        if base.returncode != 0:
            raise RuntimeError(f"baseline ffmpeg failed: {base.stderr[-500:]}")

        # Ingest's probe of every chunk (with the decode check): a stage of its own, before the job. It
        # reaches the job through the chunk's record, as in the pipeline (worker.py: probe.from_record).
        ingest_cpu, records = 0.0, []
        for chunk in chunks:
            probed = probe(str(chunk))
            ingest_cpu += probed.cpu_seconds
            records.append(to_record(probed))

        # Ours: every chunk as its own job (what each Lambda does), one after another.
        self0 = _self_cpu()
        cpu0, t0 = _children_cpu(), time.perf_counter()
        walls = []
        for seq, chunk in enumerate(chunks):
            result = run(TranscodeJob("bench", seq, str(chunk), str(folder / "ours"), ladder, seq * CHUNK,
                                      info=from_record(records[seq])))
            walls.append(result.wall_seconds)
        ours_cpu, ours_wall = _children_cpu() - cpu0, time.perf_counter() - t0
        # Python's own share (box surgery, subprocess bookkeeping) is small but real: count it.
        ours_cpu += _self_cpu_since(self0)

    media = float(seconds)
    per_chunk_base_wall = base.wall_seconds * CHUNK / media
    return {
        "media_seconds": media,
        "chunks": len(chunks),
        "baseline_cpu_per_media_s": base.cpu_seconds / media,
        "ours_cpu_per_media_s": ours_cpu / media,
        "cpu_ratio": ours_cpu / base.cpu_seconds,
        "baseline_wall_per_chunk": per_chunk_base_wall,
        "ours_wall_per_chunk": sum(walls) / len(walls),
        "wall_ratio": (ours_wall / len(chunks)) / per_chunk_base_wall,
        "fixed_cpu_per_chunk": (ours_cpu - base.cpu_seconds) / len(chunks),
        "ingest_probe_cpu_per_chunk": ingest_cpu / len(chunks),
        "with_ingest_probe_cpu_ratio": (ours_cpu + ingest_cpu) / base.cpu_seconds,
        "baseline_x_realtime_one_core": media / base.cpu_seconds,
        "ours_x_realtime_one_core": media / ours_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="chunked transcode vs one raw ffmpeg")
    # The production ladder by default: the overhead target is about it. The test ladder is so
    # cheap (~0.12 CPU s per chunk) that per-process start-up dominates its ratio.
    parser.add_argument("--ladder", default="default", choices=sorted(LADDERS))
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--size", default="", help="source picture size (default: the ladder's top rung)")
    parser.add_argument("--preset", default="", help="override the ladder's x264 preset")
    args = parser.parse_args(argv if argv is not None else [])
    ladder = LADDERS[args.ladder]
    if args.preset:
        ladder = replace(ladder, preset=args.preset)
    top = max(ladder.video, key=lambda r: r.width * r.height)
    size = args.size or f"{top.width}x{top.height}"
    r = measure(ladder, args.seconds, size)
    print(f"ladder={args.ladder} ({', '.join(ladder.names)}) preset={ladder.preset} source={size}@"
          f"{ladder.frame_rate} {r['media_seconds']:.0f}s in {r['chunks']:.0f} chunks")
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
