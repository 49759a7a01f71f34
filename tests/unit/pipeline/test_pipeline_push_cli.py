"""`slipstream push`: argument handling, the progress line and clear failures."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from slipstream_cli import push


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="slipstream")
    push.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["push", *argv])


def test_defaults_are_a_live_encoder_two_second_chunks_realtime() -> None:
    a = parse("--channel", "news", "--bucket", "b", "testsrc")
    assert (a.segment_time, a.realtime, a.start_seq, a.source) == (2.0, True, 0, "testsrc")
    assert parse("--channel", "n", "--bucket", "b", "--no-realtime", "x.mp4").realtime is False


def test_the_command_cuts_on_forced_keyframes_and_prints_each_closed_chunk(tmp_path: Path) -> None:
    a = parse("--channel", "news", "--bucket", "b", "--start-seq", "7", "--duration", "6", "testsrc")
    cmd = push.ffmpeg_command("ffmpeg", a, tmp_path, drawtext=False)
    joined = " ".join(cmd)
    assert "-force_key_frames expr:gte(t,n_forced*2)" in joined
    assert "-segment_list pipe:1" in joined and "-reset_timestamps 0" in joined
    assert "-segment_start_number 7" in joined and "-t 6" in joined and "-re" in cmd
    assert "drawtext" not in joined


def test_progress_line_reports_segments_bitrate_and_lag() -> None:
    p = push.Progress(started=100.0)
    p.add(250_000, 2.0)
    p.add(250_000, 2.0)
    assert p.line(now=105.0) == "sent 2 segments | 1,000 kbit/s | lag +1.0 s"


def test_given_no_destination_then_a_clear_error_and_exit_2() -> None:
    err = io.StringIO()
    assert push.run(parse("--channel", "news", "testsrc"), out=err) == 2
    assert "--bucket NAME" in err.getvalue()


def test_given_a_missing_source_file_then_exit_2_naming_it(tmp_path: Path) -> None:
    err = io.StringIO()
    assert push.run(parse("--channel", "news", "--bucket", "b", str(tmp_path / "nope.mp4")), out=err) == 2
    assert "nope.mp4" in err.getvalue()


def test_given_ffmpeg_is_missing_then_exit_2_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FFMPEG_PATH", str(tmp_path / "no-ffmpeg"))
    err = io.StringIO()
    assert push.run(parse("--channel", "news", "--bucket", "b", "testsrc"), out=err) == 2
    assert "ffmpeg is required" in err.getvalue()


def test_given_a_bad_channel_id_then_exit_2() -> None:
    err = io.StringIO()
    assert push.run(parse("--channel", "Bad Id", "--bucket", "b", "testsrc"), out=err) == 2
    assert "invalid channel id" in err.getvalue()


def test_bench_percentiles_are_nearest_rank_and_mpd_counting_expands_repeats() -> None:
    from bench.latency import _mpd_count, percentile

    assert (percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95)) == (3.0, 5.0)
    mpd = ('<SegmentTemplate startNumber="4"><SegmentTimeline><S t="0" d="180000" r="3"/>'
           '<S d="170000"/></SegmentTimeline></SegmentTemplate>')
    assert _mpd_count(mpd) == 4 + 5


class FakeResponse:
    def __init__(self, body: bytes = b"") -> None:
        self.body = body

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self) -> bytes:
        return self.body


def test_api_mode_fetches_presigned_urls_in_batches_and_puts_each_chunk(tmp_path: Path) -> None:
    import json
    import urllib.request

    calls: list[tuple[str, str, dict[str, str], bytes]] = []

    def opener(req: urllib.request.Request, timeout: float) -> FakeResponse:
        calls.append((req.get_method(), req.full_url, dict(req.header_items()), req.data or b""))  # type: ignore[arg-type]
        if req.get_method() == "POST":
            first = json.loads(req.data or b"{}")["first_seq"]  # type: ignore[arg-type]
            return FakeResponse(json.dumps({"urls": [{"seq": s, "url": f"https://put/{s}"}
                                                     for s in range(first, first + 2)]}).encode())
        return FakeResponse()

    args = parse("--channel", "news", "--api", "https://api.example/", "--api-key", "k", "testsrc")
    up = push.Uploader(args, opener=opener)
    chunk = tmp_path / "00000005.ts"
    chunk.write_bytes(b"\x47" * 188)
    for seq in (5, 6, 7):
        up.put(seq, chunk)
    methods = [(m, u) for m, u, _, _ in calls]
    assert methods == [("POST", "https://api.example/channels/news/ingest-urls"), ("PUT", "https://put/5"),
                       ("PUT", "https://put/6"), ("POST", "https://api.example/channels/news/ingest-urls"),
                       ("PUT", "https://put/7")]
    assert calls[0][2]["X-api-key"] == "k" and calls[1][3] == b"\x47" * 188
