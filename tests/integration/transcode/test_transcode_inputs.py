"""Bad chunks are refused before any encode with a one-line reason; odd-but-valid ones work."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from transcode_source import CHUNK_SECONDS, Channel, make_chunks

from chalicelib.errors import InvalidMediaError
from chalicelib.media import grid
from chalicelib.media.ladder import TEST_LADDER
from chalicelib.transcode import TranscodeJob, boxes, find_binary, probe, run
from chalicelib.transcode.ffmpeg import TS_PTS_OFFSET

pytestmark = pytest.mark.integration


def ffmpeg(*args: str) -> None:
    subprocess.run([find_binary("ffmpeg"), "-v", "error", "-y", *args], check=True, timeout=120)


def video_pts(path: Path, stream: str = "v:0") -> list[int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True).stdout
    return [int(p["pts"]) for p in json.loads(out)["packets"]]


def test_given_a_good_chunk_when_probed_then_described_from_ffmpeg_alone(
    channel: Channel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Lambda layer has no ffprobe: a PATH holding only ffmpeg must be enough.
    only = tmp_path / "bin"
    only.mkdir()
    (only / "ffmpeg").symlink_to(find_binary("ffmpeg"))
    monkeypatch.setenv("PATH", str(only))
    info = probe(str(channel.chunks[1]))
    assert (info.container, info.width, info.height, info.fps, info.frames) == ("mpegts", 320, 180, 25, 50)
    assert info.duration == 2.0 and info.has_audio and info.video_codec == "h264"
    assert info.start_time == pytest.approx(3.421333, abs=1e-5)  # source clock, 1.4 s mpegts offset kept
    assert info.sample_rate == 48000


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, channel: Channel) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-chunks")
    good = channel.chunks[2].read_bytes()
    files = {
        "garbage": bytes(random.Random(1).getrandbits(8) for _ in range(20_000)),
        "truncated_ts": good[: len(good) // 2 + 5],
        "empty": b"",
    }
    # Random bytes over 40 video TS packets mid-chunk (headers kept): demuxes, fails to decode.
    damaged = bytearray(good)
    rng = random.Random(7)
    packets = len(good) // 188
    for k in range(packets // 3, packets // 3 + 40):
        off = k * 188
        pid = ((damaged[off + 1] & 0x1F) << 8) | damaged[off + 2]
        if pid == 0x100 and not damaged[off + 1] & 0x40:  # video PID, not the start of a frame
            damaged[off + 4 : off + 188] = bytes(rng.getrandbits(8) for _ in range(184))
    files["corrupt_payload"] = bytes(damaged)
    paths = {}
    for name, data in files.items():
        (d / f"{name}.ts").write_bytes(data)
        paths[name] = d / f"{name}.ts"
    src = str(channel.chunks[2])
    ffmpeg("-i", src, "-c", "copy", "-f", "matroska", str(d / "chunk.mkv"))
    paths["mkv"] = d / "chunk.mkv"
    ffmpeg("-i", src, "-map", "0:a", "-c", "copy", "-f", "mpegts", str(d / "audio_only.ts"))
    paths["audio_only"] = d / "audio_only.ts"
    ffmpeg("-i", src, "-c", "copy", "-movflags", "+faststart", str(d / "whole.mp4"))
    mp4 = (d / "whole.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(mp4[: len(mp4) * 2 // 3])
    paths["truncated_mp4"] = d / "truncated.mp4"
    return paths


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("garbage", r"garbage\.ts: unreadable media \(Invalid data found when processing input\)"),
        ("truncated_ts", r"truncated MPEG-TS \(\d+ bytes is not a whole number of 188-byte packets\)"),
        ("empty", r"empty\.ts: empty file"),
        ("mkv", r"unsupported container 'matroska,webm'; send MPEG-TS or MP4"),
        ("audio_only", r"audio_only\.ts: no video stream"),
        ("truncated_mp4", r"truncated\.mp4: corrupt or truncated media \(decode error: .*\)"),
        ("corrupt_payload", r"corrupt_payload\.ts: corrupt or truncated media \(decode error: .*\)"),
    ],
)
def test_given_a_bad_chunk_when_probed_then_invalid_media_error_with_one_line_reason(
    bad: dict[str, Path], name: str, message: str
) -> None:
    with pytest.raises(InvalidMediaError, match=message) as caught:
        probe(str(bad[name]))
    assert "\n" not in str(caught.value)


def test_given_absurd_limits_when_probed_then_refused_before_decoding(channel: Channel) -> None:
    with pytest.raises(InvalidMediaError, match=r"absurd resolution 320x180 \(limit 1000 pixels\)"):
        probe(str(channel.chunks[0]), max_pixels=1000)
    with pytest.raises(InvalidMediaError, match=r"absurd duration 2\.\d+ s \(limit 1 s\)"):
        probe(str(channel.chunks[0]), max_duration=1)


def test_given_a_corrupt_chunk_in_a_channel_when_run_then_refused_and_the_next_chunk_still_works(
    bad: dict[str, Path], channel: Channel, tmp_path: Path
) -> None:
    for name in ("garbage", "truncated_ts", "truncated_mp4", "corrupt_payload", "mkv", "audio_only"):
        with pytest.raises(InvalidMediaError, match=re.escape(bad[name].name)):
            run(replace(channel.job(5, tmp_path), source_path=str(bad[name])))
    assert list(tmp_path.rglob("*")) == []  # nothing half-written for the packager to pick up
    result = run(channel.job(6, tmp_path))
    assert {o.rendition for o in result.outputs} == {"360p", "240p", "audio"}


def test_given_ts_container_when_chunks_transcoded_then_mpeg_ts_timestamps_continue(
    channel: Channel, tmp_path: Path
) -> None:
    ladder = replace(TEST_LADDER, container="ts")
    for seq in range(3):
        result = run(replace(channel.job(seq, tmp_path), ladder=ladder))
        assert [Path(o.segment_path).name for o in result.outputs] == [f"{seq:08d}.ts"] * 3
        assert all(o.init_path == "" for o in result.outputs)
        assert [o.duration for o in result.outputs if o.rendition != "audio"] == [CHUNK_SECONDS] * 2
        [audio] = [o for o in result.outputs if o.rendition == "audio"]
        assert audio.duration == audio.duration_ticks / 48_000 and audio.duration_ticks % 1024 == 0
    cat = tmp_path / "360p.ts"
    cat.write_bytes(b"".join((tmp_path / "360p" / f"{s:08d}.ts").read_bytes() for s in range(3)))
    pts = video_pts(cat)
    assert pts[0] == TS_PTS_OFFSET * 90_000 and len(pts) == 3 * 50
    assert [b - a for a, b in itertools.pairwise(sorted(pts))] == [3600] * (len(pts) - 1)
    # Audio segments put end to end: every AAC frame 1920 ticks after the last, no gap at a chunk
    # boundary. MPEG-TS cannot signal AAC priming, so each later chunk starts with its priming frame on
    # the previous chunk's last frame (one repeated timestamp per boundary, dropped by players), the
    # same in every chunk, so it never accumulates.
    acat = tmp_path / "audio.ts"
    acat.write_bytes(b"".join((tmp_path / "audio" / f"{s:08d}.ts").read_bytes() for s in range(3)))
    apts = sorted(video_pts(acat, "a:0"))
    steps = [b - a for a, b in itertools.pairwise(apts)]
    assert steps.count(0) == 2 and set(steps) == {0, 1920}
    assert 0 <= TS_PTS_OFFSET * 90_000 - apts[0] <= (grid.ENCODE_MARGIN_FRAMES + 1) * 1920


def test_given_mp4_source_chunks_when_transcoded_then_one_continuous_stream(tmp_path: Path) -> None:
    chunks = make_chunks(tmp_path / "ingest", seconds=6, fmt="mp4", ext="mp4")
    out = tmp_path / "out"
    for seq, chunk in enumerate(chunks):
        run(TranscodeJob("mp4-channel", seq, str(chunk), str(out), TEST_LADDER, media_start=seq * CHUNK_SECONDS))
    cat = tmp_path / "cat.mp4"
    cat.write_bytes((out / "360p" / "init.mp4").read_bytes()
                    + b"".join((out / "360p" / f"{s:08d}.m4s").read_bytes() for s in range(len(chunks))))
    pts = video_pts(cat)
    assert len(pts) == 6 * 25
    assert [b - a for a, b in itertools.pairwise(sorted(pts))] == [3600] * (len(pts) - 1)
    assert os.path.getsize(out / "audio" / "00000002.m4s") > 0


def test_given_a_splice_point_past_the_chunk_end_when_run_then_ignored_not_failed(
    channel: Channel, tmp_path: Path
) -> None:
    result = run(replace(channel.job(9, tmp_path), splice_points=(2.0, 2.5)))
    assert all(len(o.fragments) == 1 for o in result.outputs)


def test_given_b_frames_when_chunks_transcoded_then_first_picture_shown_at_media_start(
    channel: Channel, tmp_path: Path
) -> None:
    ladder = replace(TEST_LADDER, preset="veryfast")  # veryfast uses B-frames, ultrafast does not
    for seq in (0, 1):
        result = run(replace(channel.job(seq, tmp_path), ladder=ladder))
        for out in result.outputs:
            init = Path(out.init_path).read_bytes()
            frag = boxes.fragments_info(Path(out.segment_path).read_bytes(), init)[0]
            start = round(seq * CHUNK_SECONDS * boxes.timescale(init))
            if out.rendition == "audio":  # AAC frames stay whole: the frame nearest the boundary
                assert frag.decode_time == frag.earliest_presentation == out.start_ticks
                assert 0 <= start - frag.decode_time <= (grid.ENCODE_MARGIN_FRAMES + 1) * 1024, out
            else:
                assert (frag.decode_time, frag.earliest_presentation) == (start, start), out.rendition
    cat = tmp_path / "cat.mp4"
    cat.write_bytes((tmp_path / "360p" / "init.mp4").read_bytes()
                    + b"".join((tmp_path / "360p" / f"{s:08d}.m4s").read_bytes() for s in (0, 1)))
    pts = sorted(video_pts(cat))
    assert [b - a for a, b in itertools.pairwise(pts)] == [3600] * (len(pts) - 1)
