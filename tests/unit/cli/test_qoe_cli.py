"""`slipstream qoe`: what a CDN request log with CMCD says about each viewer's session."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from devtools.edge import RealtimeLog
from slipstream_cli.__main__ import main
from slipstream_cli.qoe import cmcd_from_request, parse_cmcd


def test_cmcd_payloads_parse_with_bare_keys_and_quoted_commas() -> None:
    assert parse_cmcd('br=3200,bs,cid="news",d=2000,nor="../r1/3.m4s?a=1,b=2",ot=v,sid="6e2f-1",su') == {
        "br": "3200", "bs": "true", "cid": "news", "d": "2000", "nor": "../r1/3.m4s?a=1,b=2", "ot": "v",
        "sid": "6e2f-1", "su": "true"}
    # Header mode (CMCD-Object / -Request / -Session / -Status) gives the same fields as query mode.
    assert cmcd_from_request("", {"cmcd-object": "br=800,d=2000,ot=v", "CMCD-Session": 'sid="s"'}) == {
        "br": "800", "d": "2000", "ot": "v", "sid": "s"}


def _request(log: RealtimeLog, path: str, cmcd: str, status: int = 200) -> None:
    log.write(method="GET", host="127.0.0.1:1", path=path, query="CMCD=" + quote(cmcd), status=status, size=1000,
              seconds=0.01, client_ip="127.0.0.1", user_agent="test", content_type="video/iso.segment", headers={})


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    log = RealtimeLog(tmp_path / "cdn-realtime.jsonl")
    # Viewer A (HLS): starts at 800 kb/s, switches up to 3200, starves once, keeps 6-8 s of buffer.
    _request(log, "/origin/news/master.m3u8", 'cid="news",ot=m,sf=h,sid="a",su')
    _request(log, "/origin/news/360p/1.m4s", 'br=800,bl=0,cid="news",d=2000,ot=v,sf=h,sid="a",su')
    _request(log, "/origin/news/audio/1.m4s", 'br=64,cid="news",d=2000,ot=a,sf=h,sid="a",su')
    _request(log, "/origin/news/1080p/2.m4s", 'br=3200,bl=6000,cid="news",d=2000,ot=v,sf=h,sid="a",mtp=9000')
    _request(log, "/origin/news/1080p/3.m4s", 'br=3200,bl=8000,bs,cid="news",d=2000,ot=v,sf=h,sid="a",mtp=7000')
    _request(log, "/origin/news/audio/3.m4s", 'br=64,bs,cid="news",d=2000,ot=a,sf=h,sid="a"')
    _request(log, "/origin/news/1080p/4.m4s", 'br=3200,bl=7000,cid="news",d=2000,ot=v,sf=h,sid="a",pr=1.05')
    # Viewer B (DASH) on the same channel, one failed request, no starvation.
    _request(log, "/origin/news/720p/9.m4s", 'br=1600,bl=4000,cid="news",d=2000,ot=v,sf=d,sid="b"', status=404)
    _request(log, "/origin/news/720p/9.m4s", 'br=1600,bl=4000,cid="news",d=2000,ot=v,sf=d,sid="b"')
    # Viewer C starves twice; the player flags every request of the first episode (one episode).
    for seq, flag in enumerate(["", ",bs", ",bs", ",bs", "", ",bs", ""]):
        _request(log, f"/origin/news/720p/{seq}.m4s", f'br=1600,bl=3000,cid="news",d=2000,ot=v,sf=d,sid="c"{flag}')
    # Another channel, and a request without CMCD: neither counts for viewer A or B.
    _request(log, "/origin/sports/720p/9.m4s", 'br=1600,cid="sports",d=2000,ot=v,sf=d,sid="c"')
    log.write(method="GET", host="h", path="/origin/news/360p/5.m4s", query="", status=200, size=1, seconds=0.0,
              client_ip="127.0.0.1", user_agent="curl", content_type="video/iso.segment", headers={})
    return log.path


def test_given_two_viewers_when_summarised_then_rebuffers_and_bitrate_are_per_session(log_file: Path) -> None:
    from slipstream_cli.qoe import read_records, summarise

    report = summarise("news", read_records([str(log_file)]))
    a, b, c = report["sessions"]
    assert (a["session_id"], b["session_id"], c["session_id"]) == ("a", "b", "c")
    assert c["rebuffers"] == 2
    assert a["formats"] == ["h"] and b["formats"] == ["d"]
    # One starvation episode, reported on both the video and the audio request: counted once.
    assert a["rebuffers"] == 1 and b["rebuffers"] == 0
    # Duration-weighted video bitrate: (800 + 3 x 3200) / 4.
    assert a["bitrate_kbps"] == {"average": 2600.0, "min": 800.0, "max": 3200.0, "switches": 1, "top": None}
    assert a["video_seconds"] == 8.0 and a["rebuffers_per_minute"] == 7.5
    # Startup requests do not count towards the buffer the viewer kept.
    assert a["buffer_seconds"] == {"median": 7.0, "min": 6.0}
    assert a["throughput_kbps_median"] == 8000.0 and a["playback_rates"] == [1.05]
    # The 404 is an error and is not media the viewer got.
    assert (b["requests"], b["errors"], b["video_seconds"]) == (2, 1, 2.0)
    assert report["total"] == {"sessions": 3, "requests": 16, "errors": 1, "video_seconds": 24.0, "rebuffers": 3}
    assert report["requests_without_cmcd"] == 1


def test_the_cli_prints_one_row_per_session_or_json(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qoe", "news", "--log", str(log_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "channel news: 3 session(s), 16 requests (1 errors), 24.0 s of video, 3 rebuffer(s)"
    header = next(i for i, line in enumerate(out) if line.startswith("SESSION"))
    rows = [line.split() for line in out[header + 1:]]
    assert [r[0] for r in rows] == ["a", "b", "c"]
    assert rows[0][5] == "1" and rows[0][7] == "2600"
    assert main(["--json", "qoe", "news", "--log", str(log_file)]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["rebuffers"] == 3


def test_a_missing_or_broken_log_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qoe", "news", "--log", str(tmp_path / "none.jsonl")]) == 1
    assert "no such log file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"cs-uri-stem": "/news/1.m4s"}\nnot json\n')
    assert main(["qoe", "news", "--log", str(bad)]) == 1
    assert f"{bad}:2: not a JSON object" in capsys.readouterr().err


def test_a_request_the_viewer_aborted_is_logged_as_cloudfronts_000_not_as_an_error(tmp_path: Path) -> None:
    log = RealtimeLog(tmp_path / "cdn-realtime.jsonl")
    rec = log.write(method="GET", host="h", path="/origin/news/360p/ll.m3u8", query="_HLS_msn=9&_HLS_part=4",
                    status=0, size=0, seconds=0.6, client_ip="127.0.0.1", user_agent="test",
                    content_type="application/json", headers={})
    assert (rec["sc-status"], rec["x-edge-detailed-result-type"]) == ("000", "ClientCommError")
