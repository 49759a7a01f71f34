"""`slipstream push`: argument handling, the progress line and clear failures."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

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


# --- uploads: media types, retries within one segment duration, failures on the progress line ---


class FakeClock:
    """Virtual time: sleeping advances it, so retry windows are checked without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FlakyStore:
    """A presigned-URL API plus an S3 that fails the first `failures` PUTs of each key the way given."""

    def __init__(self, failures: int = 0, error: Exception | None = None, clock: FakeClock | None = None,
                 attempt_seconds: float = 0.0, api_errors: list[Exception] | None = None) -> None:
        self.failures, self.error, self.clock, self.attempt_seconds = failures, error, clock, attempt_seconds
        self.api_errors = list(api_errors or [])
        self.puts: list[dict[str, Any]] = []
        self.url_requests = 0

    def __call__(self, req: object, timeout: float) -> FakeResponse:
        import json
        import urllib.request

        assert isinstance(req, urllib.request.Request)
        if req.get_method() == "POST":
            self.url_requests += 1
            if self.api_errors:
                raise self.api_errors.pop(0)
            doc = json.loads(req.data or b"{}")  # type: ignore[arg-type]
            urls = [{"seq": s, "url": f"https://ingest.example/news/{s:08d}.{doc['extension']}?X-Amz-Signature=x"}
                    for s in range(doc["first_seq"], doc["first_seq"] + doc["count"])]
            return FakeResponse(json.dumps({"urls": urls}).encode())
        self.puts.append({"url": req.full_url, "type": req.get_header("Content-type"), "timeout": timeout,
                          "body": req.data})
        if self.clock is not None:
            self.clock.now += self.attempt_seconds
        if len(self.puts) <= self.failures:
            assert self.error is not None
            raise self.error
        return FakeResponse()


def api_uploader(store: FlakyStore, clock: FakeClock, retries: list[str] | None = None,
                 segment_time: str = "2") -> push.Uploader:
    args = parse("--channel", "news", "--api", "https://api.example", "--api-key", "k",
                 "--segment-time", segment_time, "testsrc")
    return push.Uploader(args, opener=store, clock=clock, sleep=clock.sleep,
                         on_retry=lambda seq, reason: (retries if retries is not None else []).append(reason))


def chunk(tmp_path: Path, name: str = "00000003.ts") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\x47" * 376)
    return path


def http_error(code: int, reason: str) -> Exception:
    import urllib.error

    return urllib.error.HTTPError("https://ingest.example/x", code, reason, {}, None)  # type: ignore[arg-type]


def test_presigned_puts_carry_the_media_type_of_the_chunk(tmp_path: Path) -> None:
    """Without it urllib labels the body application/x-www-form-urlencoded, which S3 stores."""
    store, clock = FlakyStore(), FakeClock()
    up = api_uploader(store, clock)
    up.put(3, chunk(tmp_path))
    up.put(4, chunk(tmp_path, "00000004.mp4"))
    assert [(p["url"].split("?")[0], p["type"]) for p in store.puts] == [
        ("https://ingest.example/news/00000003.ts", "video/mp2t"),
        ("https://ingest.example/news/00000004.mp4", "video/mp4"),
    ]


def test_given_one_transient_503_then_the_chunk_is_sent_on_the_second_attempt(tmp_path: Path) -> None:
    store, clock = FlakyStore(failures=1, error=http_error(503, "Slow Down")), FakeClock()
    retries: list[str] = []
    up = api_uploader(store, clock, retries)
    assert up.put(3, chunk(tmp_path)) == 2
    assert len(store.puts) == 2 and store.puts[0]["body"] == store.puts[1]["body"] == b"\x47" * 376
    assert retries == ["chunk 3: 503 Slow Down"]
    assert 0.05 <= clock.slept[0] <= 0.1  # the first backoff, jittered


@pytest.mark.parametrize("error", [TimeoutError("timed out"), ConnectionResetError("reset by peer")],
                         ids=["timeout", "connection-reset"])
def test_timeouts_and_dropped_connections_are_retried_too(tmp_path: Path, error: Exception) -> None:
    store, clock = FlakyStore(failures=2, error=error), FakeClock()
    assert api_uploader(store, clock).put(3, chunk(tmp_path)) == 3


def test_a_chunk_that_keeps_failing_is_given_up_within_one_segment_duration(tmp_path: Path) -> None:
    """Each attempt takes 0.3 s and fails: backoff doubles, and no attempt starts past the window."""
    clock = FakeClock()
    store = FlakyStore(failures=10**6, error=http_error(500, "Internal Error"), clock=clock, attempt_seconds=0.3)
    up = api_uploader(store, clock)
    started = clock.now
    with pytest.raises(push.PushError, match=r"chunk 3: 500 Internal Error \(gave up after \d attempt"):
        up.put(3, chunk(tmp_path))
    assert 2 <= len(store.puts) <= 5
    assert clock.now - started <= 2.0
    assert all(b > a for a, b in zip(clock.slept, clock.slept[1:], strict=False))  # backing off
    # Each attempt may only wait for what is left of the window.
    timeouts = [float(p["timeout"]) for p in store.puts]
    assert timeouts[0] == pytest.approx(2.0) and timeouts[-1] < timeouts[0]


def test_an_api_that_answers_503_for_upload_urls_is_asked_again_within_the_window(tmp_path: Path) -> None:
    store, clock = FlakyStore(api_errors=[http_error(503, "Service Unavailable")]), FakeClock()
    assert api_uploader(store, clock).put(3, chunk(tmp_path)) == 2
    assert store.url_requests == 2 and len(store.puts) == 1


def test_an_api_that_refuses_upload_urls_stops_the_upload_with_its_answer(tmp_path: Path) -> None:
    store, clock = FlakyStore(api_errors=[http_error(409, "Conflict")]), FakeClock()
    with pytest.raises(push.PushError, match=r"the API refused ingest URLs \(409\)"):
        api_uploader(store, clock).put(3, chunk(tmp_path))
    assert store.url_requests == 1 and store.puts == []


def test_a_refused_upload_is_not_retried(tmp_path: Path) -> None:
    """403 (a wrong or expired signature) will not get better by asking again."""
    store, clock = FlakyStore(failures=1, error=http_error(403, "Forbidden")), FakeClock()
    with pytest.raises(push.PushError, match=r"chunk 3: 403 Forbidden \(not retried\)"):
        api_uploader(store, clock).put(3, chunk(tmp_path))
    assert len(store.puts) == 1 and clock.slept == []


def test_the_progress_line_reports_retries_and_the_last_failure() -> None:
    p = push.Progress(started=100.0)
    p.add(250_000, 2.0)
    p.retry()
    p.retry()
    p.fail("chunk 7: 503 Slow Down (gave up after 4 attempt(s) in 1.9 s)")
    assert p.line(now=103.0) == ("sent 1 segments | 1,000 kbit/s | lag +1.0 s | 2 retries | 1 failed "
                                 "(last: chunk 7: 503 Slow Down (gave up after 4 attempt(s) in 1.9 s))")


def test_the_cli_checks_channel_ids_with_the_apis_own_rule() -> None:
    """The CLI ships without chalicelib, so it restates the id rule; this keeps the two equal."""
    from chalicelib.records import ID_RE

    assert push.CHANNEL_ID.pattern == ID_RE.pattern


# --- low latency: parts ---


def test_with_part_time_ffmpeg_cuts_a_part_on_every_forced_idr_numbered_from_the_first_chunk(tmp_path: Path) -> None:
    a = parse("--channel", "fast", "--bucket", "b", "--part-time", "0.5", "--start-seq", "3", "testsrc")
    assert push.parts_per_chunk(a) == 4
    joined = " ".join(push.ffmpeg_command("ffmpeg", a, tmp_path, drawtext=False))
    assert "-force_key_frames expr:gte(t,n_forced*0.5)" in joined and "-segment_time 0.5" in joined
    assert "-segment_start_number 12" in joined  # file n is part n % 4 of chunk n // 4: chunk 3 part 0


@pytest.mark.parametrize("part", ["0.3", "0.1", "2", "-0.5"])
def test_a_part_time_that_does_not_divide_the_chunk_is_refused_before_ffmpeg_starts(part: str) -> None:
    err = io.StringIO()
    assert push.run(parse("--channel", "fast", "--bucket", "b", "--part-time", part, "testsrc"), out=err) == 2
    assert "--part-time" in err.getvalue() and "equal parts" in err.getvalue()


def test_parts_go_to_their_own_keys_and_presigned_urls_are_asked_for_with_the_part_count(tmp_path: Path) -> None:
    import json
    import urllib.request

    asked: list[dict[str, object]] = []
    puts: list[str] = []

    def opener(req: urllib.request.Request, timeout: float) -> FakeResponse:
        if req.get_method() == "POST":
            body = json.loads(req.data or b"{}")  # type: ignore[arg-type]
            asked.append(body)
            first = int(body["first_seq"])
            return FakeResponse(json.dumps({"urls": [{"seq": s, "part": p, "url": f"https://put/{s}.{p}"}
                                                     for s in range(first, first + 2) for p in range(4)]}).encode())
        puts.append(req.full_url)
        return FakeResponse()

    args = parse("--channel", "fast", "--api", "https://api.example/", "--part-time", "0.5", "testsrc")
    up = push.Uploader(args, opener=opener)
    assert up.window == 1.0  # a part later than two part durations is slated downstream anyway
    part = tmp_path / "00000009.ts"
    part.write_bytes(b"\x47" * 188)
    for seq, index in ((2, 0), (2, 1), (2, 3), (3, 0)):
        up.put(seq, part, index)
    assert puts == ["https://put/2.0", "https://put/2.1", "https://put/2.3", "https://put/3.0"]
    assert asked == [{"first_seq": 2, "count": push.URL_BATCH, "extension": "ts", "parts": 4}]
