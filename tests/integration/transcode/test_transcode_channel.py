"""Chunks transcoded independently (out of order, two at once) must play as one stream."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from transcode_source import CHANNEL_ID, CHUNK_SECONDS, SOURCE_SECONDS, SPLICE_AT, SPLICE_SEQ, Channel

from chalicelib.media import grid
from chalicelib.media.ladder import TEST_LADDER
from chalicelib.transcode import boxes

pytestmark = pytest.mark.integration

VIDEO = [r.name for r in TEST_LADDER.video]
AUDIO = TEST_LADDER.audio.name
FRAME = 3600  # 90 kHz ticks per frame at 25 fps
SR = TEST_LADDER.audio.sample_rate
# How far before its video boundary a re-encoded chunk's audio may start: the margin, plus up to a
# frame for the source audio's phase and the rounding to the nearest grid frame.
LEAD_MAX = (grid.ENCODE_MARGIN_FRAMES + 1) * grid.AAC_FRAME


def packets(path: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=pts,dts,duration,flags", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    return list(json.loads(out)["packets"])


def test_given_every_chunk_when_transcoded_then_init_segment_is_byte_identical(channel: Channel) -> None:
    for rendition in [*VIDEO, AUDIO]:
        digests = {hashlib.sha256(Path(channel.output(s, rendition).init_path).read_bytes()).hexdigest()
                   for s in channel.results}
        assert len(digests) == 1, rendition


def test_given_chunk_n_when_transcoded_then_tfdt_is_media_start_on_the_rendition_clock(channel: Channel) -> None:
    """Video starts exactly at the chunk's media start. Audio (re-encoded with pre-roll) starts on the
    AAC grid frame nearest its source audio's start, ENCODE_MARGIN_FRAMES back (the encoder's
    look-ahead at the previous chunk's end stays real audio): never later than the video boundary,
    at most margin + 1 frames before it, and its length is exactly what it says."""
    for seq in channel.results:
        for rendition in VIDEO:
            out = channel.output(seq, rendition)
            init = Path(out.init_path).read_bytes()
            assert boxes.timescale(init) == 90_000
            frags = boxes.fragments_info(Path(out.segment_path).read_bytes(), init)
            assert frags[0].decode_time == seq * CHUNK_SECONDS * 90_000, (seq, rendition)
            assert out.duration == pytest.approx(CHUNK_SECONDS, abs=1e-9), (seq, rendition)
            assert out.start == seq * CHUNK_SECONDS
        out = channel.output(seq, AUDIO)
        init = Path(out.init_path).read_bytes()
        assert boxes.timescale(init) == SR
        frags = boxes.fragments_info(Path(out.segment_path).read_bytes(), init)
        assert 0 <= seq * CHUNK_SECONDS * SR - frags[0].decode_time <= LEAD_MAX, seq
        # ... and exactly the grid frames the chunk's own source audio gives (what its neighbours compute
        # for it independently: that is how chunks transcoded apart tile the grid)
        info = channel.results[seq].info
        assert info.audio is not None
        media = seq * CHUNK_SECONDS * 90_000 - info.start_ticks
        want = grid.encoded_audio_span(grid.samples(media + info.audio.start_ticks, SR),
                                       grid.samples(media + info.audio.end_ticks, SR))
        assert (frags[0].decode_time, out.duration_ticks) == (want.start, want.duration), seq
        assert frags[0].decode_time == out.start_ticks and out.duration_ticks % 1024 == 0
        # 2 s at 48 kHz is 93.75 AAC frames: segments hold 93 or 94 and say so exactly (the first one
        # starts at 0 rather than margin frames early: up to two fewer).
        assert out.duration_ticks // 1024 in ((92, 93, 94) if seq == 0 else (93, 94))
        assert out.duration == out.duration_ticks / SR


@pytest.mark.parametrize("rendition", VIDEO)
def test_given_concatenated_video_when_probed_then_timestamps_continuous_and_gops_aligned(
    channel: Channel, rendition: str
) -> None:
    pkts = packets(channel.concatenated(rendition))
    assert len(pkts) == SOURCE_SECONDS * 25
    dts = [int(p["dts"]) for p in pkts]
    assert [b - a for a, b in itertools.pairwise(dts)] == [FRAME] * (len(dts) - 1)  # no gap, no overlap
    pts = sorted(int(p["pts"]) for p in pkts)
    assert [b - a for a, b in itertools.pairwise(pts)] == [FRAME] * (len(pts) - 1)
    keyframes = [int(p["pts"]) - int(pkts[0]["pts"]) for p in pkts if "K" in p["flags"]]
    expected = sorted([s * CHUNK_SECONDS * 90_000 for s in range(15)]
                      + [round((SPLICE_SEQ * CHUNK_SECONDS + SPLICE_AT) * 90_000)])
    assert keyframes == expected  # every segment starts on an IDR, plus the splice point


def test_given_all_renditions_when_compared_then_segment_boundaries_identical(channel: Channel) -> None:
    def boundaries(rendition: str) -> list[float]:
        return [channel.output(s, rendition).start for s in sorted(channel.results)]

    reference = boundaries(VIDEO[0])
    assert reference == [float(s * CHUNK_SECONDS) for s in range(15)]
    for rendition in VIDEO:
        assert boundaries(rendition) == reference
        for seq in channel.results:
            frags = channel.output(seq, rendition).fragments
            assert boxes.fragments_info(Path(channel.output(seq, rendition).segment_path).read_bytes())[0] \
                .starts_with_sync
            if seq == SPLICE_SEQ:  # the ad break starts a fragment: byte-addressable cut point
                assert [f.start for f in frags] == [14.0, pytest.approx(14.8)]
    # audio: on the AAC grid, a little before the video boundary (see the tfdt test)
    for seq in channel.results:
        assert 0 <= reference[seq] - channel.output(seq, AUDIO).start <= LEAD_MAX / SR


def test_given_concatenated_audio_when_probed_then_no_drift_or_gap_across_chunks(channel: Channel) -> None:
    path = channel.concatenated(AUDIO)
    pkts = packets(path)
    dts = [int(p["dts"]) for p in pkts]
    steps = [b - a for a, b in itertools.pairwise(dts)]
    # Every step is one whole AAC frame, across chunk boundaries too: chunks encoded apart tile the
    # AAC grid. No partial frame, no gap, no overlap, no drift.
    assert set(steps) == {1024}
    ends = [channel.output(s, AUDIO).start_ticks + channel.output(s, AUDIO).duration_ticks for s in range(14)]
    assert ends == [channel.output(s + 1, AUDIO).start_ticks for s in range(14)]
    total = sum(channel.output(s, AUDIO).duration_ticks for s in channel.results)
    assert total == len(pkts) * 1024 and 0 <= SOURCE_SECONDS * SR - total <= LEAD_MAX
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=120)
    assert decoded.returncode == 0 and decoded.stderr == ""


def test_given_a_retried_job_when_rerun_then_outputs_are_byte_identical(channel: Channel, tmp_path: Path) -> None:
    from chalicelib.transcode import run

    first = channel.results[3]
    again = run(channel.job(3, tmp_path))
    for a, b in zip(first.outputs, again.outputs, strict=True):
        assert Path(a.segment_path).read_bytes() == Path(b.segment_path).read_bytes()
        assert Path(a.init_path).read_bytes() == Path(b.init_path).read_bytes()
    # Rewriting in place (same folder) is safe too: the files are replaced, not appended to.
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    run(channel.job(3, tmp_path))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_given_jobs_when_done_then_no_scratch_files_left(channel: Channel) -> None:
    for result in channel.results.values():
        folder = Path(result.job.output_dir)
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        seq = result.job.seq
        assert names == sorted(f"{r}/{n}" for r in [*VIDEO, AUDIO] for n in ("init.mp4", f"{seq:08d}.m4s"))
    leftovers = list(Path(tempfile.gettempdir()).glob(f"slipstream-{CHANNEL_ID}-*"))
    assert leftovers == []


def test_given_results_when_reported_then_cpu_and_wall_time_measured(channel: Channel) -> None:
    for result in channel.results.values():
        assert 0 < result.cpu_seconds < 60
        assert 0 < result.wall_seconds < 60


def test_given_per_rendition_fanout_when_each_rendition_is_its_own_job_then_same_bytes_as_one_job(
    channel: Channel, tmp_path: Path
) -> None:
    from dataclasses import replace

    from chalicelib.transcode import run

    whole = channel.results[SPLICE_SEQ]
    for out in whole.outputs:
        single = run(replace(channel.job(SPLICE_SEQ, tmp_path / out.rendition), renditions=(out.rendition,)))
        assert [o.rendition for o in single.outputs] == [out.rendition]
        assert Path(single.outputs[0].segment_path).read_bytes() == Path(out.segment_path).read_bytes()
        assert Path(single.outputs[0].init_path).read_bytes() == Path(out.init_path).read_bytes()


def test_given_a_splice_point_when_transcoded_then_every_rendition_has_an_idr_exactly_there(channel: Channel) -> None:
    at = round((SPLICE_SEQ * CHUNK_SECONDS + SPLICE_AT) * 90_000)
    for rendition in VIDEO:
        out = channel.output(SPLICE_SEQ, rendition)
        data = Path(out.segment_path).read_bytes()
        frags = boxes.fragments_info(data, Path(out.init_path).read_bytes())
        assert [(f.decode_time, f.starts_with_sync) for f in frags] == [
            (SPLICE_SEQ * CHUNK_SECONDS * 90_000, True), (at, True)]
        # The second fragment is addressable on its own (EXT-X-BYTERANGE / a DASH sub-segment).
        assert out.fragments[1].offset + out.fragments[1].size == len(data)
