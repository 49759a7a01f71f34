"""ffmpeg argument building, job validation and binary lookup: no ffmpeg needed."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from chalicelib.errors import TranscodeError, ValidationError
from chalicelib.media.ladder import DEFAULT_LADDER, TEST_LADDER
from chalicelib.transcode import FFmpegNotFoundError, MediaInfo, TranscodeJob, find_binary, ladder_args
from chalicelib.transcode import ffmpeg as ff
from chalicelib.transcode.job import validate
from chalicelib.transcode.probe import _parse_fps
from tests.unit.transcode.conftest import V0, aac


def values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def graph(args: list[str]) -> str:
    return values(args, "-filter_complex")[0]


def test_given_full_ladder_when_args_built_then_source_decoded_once_and_split_per_rendition(
    job: TranscodeJob, info: MediaInfo
) -> None:
    args = ladder_args(job, info, "/work")
    assert values(args, "-i") == ["/in/7.ts"]
    g = graph(args)
    assert "split=2[s0][s1]" in g
    assert "scale=640:360" in g and "scale=426:240" in g
    # Shifted by the first video pts (exact rational: 307920/90000 s) so that output frame 0 is the chunk's
    # first grid frame; media_start 14.0 is grid frame 350 exactly, so no further shift.
    assert "setpts=PTS-(1283/375)/TB" in g and "trim=end_frame=50" in g
    # AAC-LC 48 kHz stereo at 98 kb/s: the encoder's own frames are copied, not re-encoded.
    assert "[0:a:0]" not in g and values(args, "-c:a") == ["copy"] and values(args, "-bsf:a") == ["aac_adtstoasc"]
    assert args[-1] == "/work/audio.mp4"
    assert [a for a in args if a.startswith("/work/")] == ["/work/360p.mp4", "/work/240p.mp4", "/work/audio.mp4"]


def test_given_source_between_grid_frames_when_args_built_then_frames_land_on_the_ladder_grid(
    job: TranscodeJob, info: MediaInfo
) -> None:
    # 29.97 fps source, 25 fps ladder: chunk 7 starts at 14.014 s of media time, between grid frames 350
    # (14.00 s) and 351; it rounds to 350, so its frames are shifted 14 ms earlier onto the grid.
    ntsc = replace(info, fps=Fraction(30000, 1001), end_ticks=V0 + 180_180)
    args = ladder_args(replace(job, media_start=14.014), ntsc, "/work")
    assert "setpts=PTS-(5111/1500)/TB" in graph(args)  # 3.421333.. - 0.014 s
    assert "trim=end_frame=50" in graph(args)  # 2.002 s of source: grid frames 350..399


def test_given_mp4_chunks_with_copyable_aac_then_audio_is_reencoded_not_copied(
    job: TranscodeJob, info: MediaInfo
) -> None:
    """MP4 chunks time their AAC through edit lists and coarse timescales: copied frames would not tile."""
    from chalicelib.transcode import audio as audio_plan

    span = job.video_span(info)
    assert audio_plan.plan(TEST_LADDER, info, 14 * 90_000, span).mode == "copy"
    mp4 = replace(info, container="mp4")
    assert audio_plan.plan(TEST_LADDER, mp4, 14 * 90_000, span).mode == "encode"
    assert "-c:a" in ladder_args(replace(job, source_path="/in/7.mp4"), mp4, "/work")


def test_given_audio_the_ladder_cannot_copy_when_args_built_then_reencoded_on_the_sample_grid(
    job: TranscodeJob, info: MediaInfo
) -> None:
    mono = replace(info, audio=aac(rate=44_100, channels=1, bitrate=64_000))
    args = ladder_args(job, mono, "/work")
    g = graph(args)
    # Source audio 14.005..16.188 s of media time = samples 672256..777035 at 48 kHz: grid frames 655..757
    # (one kept back at each end), fed from 3 frames earlier (the pre-roll window; silence here, there is no
    # previous chunk) plus 2 frames of look-ahead.
    span_start, span_frames = 655 * 1024, 757 - 655
    # The decoded stream starts with the chunk's first AAC frame (media sample 672256): the window, 3 frames
    # before the span, starts 6144 + 2560 samples earlier, padded with silence by sample count.
    first = round((14 * 90_000 + 480) * 48_000 / 90_000)
    assert f"adelay=delays={first - (span_start - 3 * 1024)}S:all=1" in g
    assert f"atrim=end_sample={(span_frames + 3 + 2) * 1024}" in g and "channel_layouts=stereo" in g
    assert values(args, "-c:a") == ["aac"] and values(args, "-ar") == ["48000"]


def test_given_a_preroll_chunk_when_args_built_then_audio_is_read_from_the_joined_input(
    job: TranscodeJob, info: MediaInfo
) -> None:
    from chalicelib.transcode import audio as audio_plan
    from chalicelib.transcode.job import TranscodeJob as Job

    mono = replace(info, audio=aac(rate=44_100, channels=1, bitrate=64_000))
    prev = aac(start=V0 - 180_000, packets=86, rate=44_100, channels=1, bitrate=64_000)
    span = Job.video_span(job, mono)
    assert mono.audio is not None
    plan = audio_plan.plan(TEST_LADDER, mono, 14 * 90_000, span,
                           preroll=replace(prev, end_ticks=mono.audio.start_ticks))
    assert plan.preroll and not plan.cold and plan.skip == 1 + 3
    args = ladder_args(replace(job, preroll_path="/work/preroll.ts"), mono, "/work", plan)
    assert values(args, "-i") == ["/in/7.ts", "/work/preroll.ts"]
    g = graph(args)
    assert g.count("[1:a:0]aresample") == 1 and "[0:a:0]" not in g
    # the joined input's window is cut by sample count, from the pre-roll's start
    assert "atrim=start_sample=" in g and "adelay=" not in g


def test_given_splice_point_when_args_built_then_every_rendition_gets_the_same_closed_gop_and_idr(
    job: TranscodeJob, info: MediaInfo
) -> None:
    args = ladder_args(job, info, "/work")
    assert values(args, "-force_key_frames") == ["0,0.8", "0,0.8"]
    assert values(args, "-g") == ["50", "50"] == values(args, "-keyint_min")
    assert values(args, "-sc_threshold") == ["0", "0"]
    assert all("+cgop" in v for v in values(args, "-flags:v"))
    assert values(args, "-forced-idr") == ["1", "1"]
    assert values(args, "-preset") == ["ultrafast", "ultrafast"]
    assert values(args, "-profile:v") == ["high", "main"]


def test_given_cmaf_when_args_built_then_fragmented_mp4_at_90khz_bitexact(job: TranscodeJob, info: MediaInfo) -> None:
    args = ladder_args(job, info, "/work")
    movflags = values(args, "-movflags")
    assert all("empty_moov" in m and "default_base_moof" in m for m in movflags)
    assert "+frag_keyframe" in movflags[0] and "+frag_custom" in movflags[2]
    assert values(args, "-video_track_timescale") == ["90000", "90000"]
    assert values(args, "-fflags") == ["+bitexact"] * 3
    assert values(args, "-threads:v") == [str(ff.X264_THREADS)] * 2
    # Frame threads + VBV are not deterministic; sliced threads are (retries rewrite the same bytes).
    assert values(args, "-x264-params") == ["sliced-threads=1"] * 2
    assert graph(args).count("bitexact") == 2


def test_given_default_ladder_when_args_built_then_levels_and_rates_come_from_the_ladder(info: MediaInfo) -> None:
    job = TranscodeJob("ch", 0, "/in/0.ts", "/out", DEFAULT_LADDER, 0.0)
    args = ladder_args(job, info, "/w")
    assert values(args, "-b:v") == ["5000000", "3000000", "1200000", "800000"]
    assert values(args, "-bufsize")[0] == "11000000"
    assert values(args, "-level:v")[0] == "4.0"  # 1080p30
    assert "fps=30" in graph(args) and "split=4" in graph(args)


def test_given_one_rendition_job_when_args_built_then_only_that_output(job: TranscodeJob, info: MediaInfo) -> None:
    args = ladder_args(replace(job, renditions=("240p",)), info, "/work")
    assert [a for a in args if a.startswith("/work/")] == ["/work/240p.mp4"]
    assert "split=1[s0]" in graph(args) and "[0:a:0]" not in graph(args)


def test_given_audio_only_job_when_args_built_then_no_video_decode(job: TranscodeJob, info: MediaInfo) -> None:
    copied = ladder_args(replace(job, renditions=("audio",)), info, "/work")
    assert "-filter_complex" not in copied and "-c:v" not in copied and values(copied, "-c:a") == ["copy"]
    mono = replace(info, audio=aac(rate=44_100, channels=1))
    args = ladder_args(replace(job, renditions=("audio",)), mono, "/work")
    assert "[0:v:0]" not in graph(args) and "-c:v" not in args
    assert values(args, "-ar") == ["48000"]


def test_given_chunk_without_audio_when_args_built_then_silence_fills_the_audio_rendition(
    job: TranscodeJob, info: MediaInfo
) -> None:
    args = ladder_args(job, replace(info, has_audio=False, audio=None), "/work")
    assert values(args, "-i")[1] == "anullsrc=r=48000:cl=stereo"
    assert "[1:a:0]aresample" in graph(args)


def test_given_ragged_chunk_when_args_built_then_video_cut_to_whole_grid_frames(
    job: TranscodeJob, info: MediaInfo
) -> None:
    args = ladder_args(job, replace(info, end_ticks=V0 + round(2.03 * 90_000)), "/work")
    assert "trim=end_frame=51" in graph(args)  # 14.00 .. 16.03 s: grid frames 350..400


def test_given_ts_container_when_args_built_then_offset_by_media_start(job: TranscodeJob, info: MediaInfo) -> None:
    ts_job = replace(job, ladder=replace(TEST_LADDER, container="ts"))
    args = ladder_args(ts_job, info, "/work")
    assert values(args, "-f")[-3:] == ["mpegts"] * 3
    # Video from the filter starts at 0: offset = its grid start. Copied audio keeps the source clock
    # (-copyts): offset = media_start - first video pts, so it lands where the video's clock says.
    offsets = values(args, "-output_ts_offset")
    assert offsets[:2] == [str(int(14 + ff.TS_PTS_OFFSET))] * 2
    assert float(offsets[2]) == pytest.approx(14 - V0 / 90_000 + ff.TS_PTS_OFFSET, abs=1e-6)
    assert args[-1] == "/work/audio.ts"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"renditions": ("4k",)}, "unknown renditions"),
        ({"timeout": 900.0}, "Lambda limit"),
        ({"media_start": -1.0}, "media_start"),
        ({"splice_points": (0.0,)}, "splice points"),
        ({"seq": -3}, "sequence"),
        ({"ladder": replace(TEST_LADDER, container="webm")}, "unknown container"),
    ],
)
def test_given_bad_job_when_validated_then_validation_error(job: TranscodeJob, change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate(replace(job, **change))


def test_given_subset_when_validated_then_ladder_order(job: TranscodeJob) -> None:
    assert validate(replace(job, renditions=("audio", "360p"))) == ("360p", "audio")
    assert validate(job) == ("360p", "240p", "audio")


def _exe(path: Path) -> str:
    path.write_text("#!/bin/sh\necho fake\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_given_env_override_when_finding_then_it_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _exe(tmp_path / "my-ffmpeg")
    monkeypatch.setenv("FFMPEG_PATH", fake)
    assert find_binary("ffmpeg") == fake
    monkeypatch.setenv("FFPROBE_PATH", str(tmp_path / "missing"))
    with pytest.raises(FFmpegNotFoundError, match="FFPROBE_PATH"):
        find_binary("ffprobe")


def test_given_lambda_layer_when_finding_then_opt_bin_before_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FFMPEG_PATH", raising=False)
    layer = tmp_path / "opt-bin"
    layer.mkdir()
    fake = _exe(layer / "ffmpeg")
    monkeypatch.setattr(ff, "LAYER_BIN", str(layer))
    assert find_binary("ffmpeg") == fake


def test_given_only_path_when_finding_then_path_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FFPROBE_PATH", raising=False)
    monkeypatch.setattr(ff, "LAYER_BIN", str(tmp_path / "none"))
    fake = _exe(tmp_path / "ffprobe")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary("ffprobe") == fake


def test_given_nothing_installed_when_finding_then_error_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FFMPEG_PATH", raising=False)
    monkeypatch.setattr(ff, "LAYER_BIN", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(FFmpegNotFoundError, match="apt-get install ffmpeg"):
        find_binary("ffmpeg")


def test_given_slow_child_when_run_then_killed_at_timeout() -> None:
    with pytest.raises(TranscodeError, match=r"timed out after 0\.2 s"):
        ff.run_process([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.2)


def test_given_busy_child_when_run_then_its_own_cpu_time_is_measured() -> None:
    result = ff.run_process([sys.executable, "-c", "import sys\nx=0\nfor i in range(3_000_000): x+=i\n"
                             "sys.stderr.write('done')"], timeout=60)
    assert result.returncode == 0 and result.stderr == "done"
    assert 0.05 < result.cpu_seconds <= result.wall_seconds * 1.5 + 0.05


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc only")
def test_given_chunk_encode_when_child_started_then_it_runs_without_huge_pages() -> None:
    # x264 madvises its big buffers: with huge pages every chunk's process zeroes whole 2 MB pages.
    status = [sys.executable, "-c", "print([l for l in open('/proc/self/status') if l.startswith('THP_enabled')])"]
    small = ff.run_process(status, timeout=30, stdout=True, huge_pages=False)
    default = ff.run_process(status, timeout=30, stdout=True)
    if "THP_enabled" not in default.stdout:
        pytest.skip("this kernel does not report THP_enabled")
    assert "\\t0" in small.stdout and "\\t1" in default.stdout
    assert ff.CHUNK_HUGE_PAGES is False  # what job.run starts its ffmpeg with


def test_given_missing_program_when_run_then_not_found_error() -> None:
    with pytest.raises(FFmpegNotFoundError, match="apt-get install"):
        ff.run_process([os.path.join("/nonexistent", "ffmpeg")], timeout=1)


@pytest.mark.parametrize(("text", "fps"), [("25 fps", "25"), ("29.97 fps", "30000/1001"), ("59.94 fps", "60000/1001"),
                                           ("1k fps", "1000"), ("no rate", "0")])
def test_given_ffmpeg_stream_line_when_fps_parsed_then_exact_rational(text: str, fps: str) -> None:
    from fractions import Fraction

    assert _parse_fps(f"h264, yuv420p, 320x180, {text}, 90k tbn") == Fraction(fps)


@pytest.mark.parametrize(
    ("line", "is_input_error"),
    [
        ("[h264 @ 0x562bc3815e00] [error] Invalid level prefix", True),
        ("[vist#0:0/h264 @ 0x1] [dec:h264 @ 0x2] [error] error while decoding MB 1 8", True),
        ("[in#0/mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] [error] stream 0, offset 0x5993: partial file", True),
        ("[aac @ 0x3] [error] Input buffer exhausted before END element found", True),
        ("[libx264 @ 0x1] [error] an encoder problem is ours, not the chunk's", False),
        ("[mp4 @ 0x1] [error] a muxer problem is ours too", False),
        ("[h264 @ 0x1] [warning] a warning is not an error", False),
    ],
)
def test_given_ffmpeg_log_line_when_classified_then_only_input_errors_reject_the_chunk(
    line: str, is_input_error: bool
) -> None:
    from chalicelib.transcode.job import _DECODE_ERROR_RE

    assert bool(_DECODE_ERROR_RE.search(line)) is is_input_error


@pytest.mark.parametrize("container", ["cmaf", "ts"])
def test_given_the_previous_segment_already_holds_the_first_frames_then_none_of_them_is_output_twice(
    job: TranscodeJob, info: MediaInfo, container: str
) -> None:
    """A re-encoded chunk whose predecessor's audio reaches into its span leaves those frames out. fMP4
    drops them as skipped packets in the box layer; MPEG-TS writes every packet the encoder emits, so
    its encoder must start after them (they would overlap the previous segment and be heard twice)."""
    from chalicelib.transcode import audio as audio_plan

    ladder = replace(TEST_LADDER, container=container)
    mono = replace(info, audio=aac(rate=44_100, channels=1, bitrate=64_000))
    span = job.video_span(mono)
    free = audio_plan.plan(ladder, mono, 14 * 90_000, span)
    held = free.span.start + 2 * 1024 + 100  # the previous segment ends 100 samples into frame 3
    plan = audio_plan.plan(ladder, mono, 14 * 90_000, span, not_before=held)
    assert plan.span.start == free.span.start + 3 * 1024 and plan.span.frames == free.span.frames - 3
    assert plan.span.start >= held
    args = ladder_args(replace(job, ladder=ladder), mono, "/work", plan)
    sr = ladder.audio.sample_rate
    if container == "ts":
        # what the encoder is fed starts at the first kept frame; -frames:a bounds the packets written
        assert plan.skip == 0 and plan.input_start == plan.span.start
        assert plan.input_samples == free.input_samples - 3 * 1024
        assert values(args, "-frames:a") == [str(1 + plan.span.frames)]
        assert values(args, "-output_ts_offset")[-1] == ff._num(float(Fraction(plan.span.start, sr)) + ff.TS_PTS_OFFSET)
    else:
        assert plan.skip == free.skip + 3 and plan.input_start == free.input_start
