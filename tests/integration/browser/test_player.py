"""The player page in a real browser (Debian chromium via playwright-core), the way a viewer uses it.

Two layers, so a failure says where it is:
- the page + demo server against a small live origin (ffmpeg's live HLS or DASH, two renditions,
  with the SCTE-35 markers of the breaks the page's button asked a stand-in API for) behind the
  demo origin enforcing signed playback: proves each engine plays a signed stream, the stats and
  charts, rendition selection and ABR, the ad-break timeline, DVR, CMCD and `slipstream qoe`;
- `make demo`'s whole stack (emulated AWS, deployed functions, chalice local, live push, signing
  on): proves an unsigned segment fetch gets 403 and a signed viewer plays, marked, without a stall.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib import records
from chalicelib.control import channels
from chalicelib.control.adapters import CloudFrontPolicySigner
from chalicelib.media import scte35
from devtools import demo
from devtools.edge import RealtimeLog, TrustedKeys
from slipstream_cli.__main__ import main as slipstream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

CHANNEL = "browser-test"
LIVE_SEGMENTS = 8  # master.m3u8 lists the last 8 segments; dvr.m3u8 all ffmpeg keeps (30)


def fetch(url: str, cookies: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Cookie": cookies} if cookies else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --------------------------------------------------------------------------- a small live origin
class LiveOrigin(demo.DirectoryObjectSource):
    """ffmpeg's live HLS or DASH output (two renditions), plus the SCTE-35 markers of the breaks the
    stand-in API accepted, the way the packager writes them (DESIGN.md):

    HLS, both dialects on the segment boundary of the splice: EXT-X-CUE-OUT / -CUE-OUT-CONT
    (ElapsedTime, Duration) / -CUE-IN, and an EXT-X-DATERANGE with one ID, START-DATE = the
    segment's program date time, PLANNED-DURATION and SCTE35-OUT, joined by END-DATE, DURATION
    and SCTE35-IN once the break is over. master.m3u8 lists the live window, dvr.m3u8 everything.
    DASH: an EventStream with the splice_insert out and, once over, the splice_insert in."""

    def __init__(self, root: Path, fmt: str) -> None:
        super().__init__(root)
        self.breaks: list[dict[str, Any]] = []
        self.format = fmt
        self._lock = threading.Lock()

    def add_break(self, duration: float) -> dict[str, Any]:
        with self._lock:
            event_id = len(self.breaks) + 1
            at = datetime.now(UTC) + timedelta(seconds=1)
            cue = scte35.splice_insert(event_id, pts=None, duration=duration)
            back = scte35.splice_insert(event_id, pts=None, duration=None, out_of_network=False)
            brk = {"id": f"splice-{event_id}", "splice_event_id": event_id, "duration": duration,
                   "start": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "scte35": cue.hex,
                   "base64": cue.base64, "in_hex": back.hex, "in_base64": back.base64, "at": at}
            self.breaks.append(brk)
            return {k: v for k, v in brk.items() if k not in ("at", "in_hex", "in_base64")}  # the API's answer

    def get(self, key: str) -> tuple[bytes, Mapping[str, str]]:
        name = key.split("/", 1)[1] if "/" in key else key
        if self.format == "hls" and name in ("master.m3u8", "dvr.m3u8"):
            body, headers = super().get(key.rsplit("/", 1)[0] + "/master.m3u8")
            window = "live" if name == "master.m3u8" else "index"
            text = re.sub(r"^(v\d+)/index\.m3u8$", rf"\1/{window}.m3u8", body.decode(), flags=re.M)
            return text.encode(), {**headers, "Cache-Control": "max-age=1"}
        if self.format == "hls" and key.endswith(("/live.m3u8", "/index.m3u8")):
            body, headers = super().get(key.rsplit("/", 1)[0] + "/index.m3u8")
            text = self._hls(body.decode(), live=key.endswith("/live.m3u8"))
            return text.encode(), {**headers, "Content-Type": "application/vnd.apple.mpegurl",
                                   "Cache-Control": "max-age=1"}
        body, headers = super().get(key)
        if key.endswith(".mpd"):
            return self._with_event_stream(body), {**headers, "Cache-Control": "max-age=1"}
        return body, headers

    def _hls(self, text: str, live: bool) -> str:
        lines = [line for line in text.splitlines() if line.strip()]
        first = next(i for i, line in enumerate(lines) if line.startswith(("#EXTINF", "#EXT-X-PROGRAM-DATE-TIME")))
        header, blocks, block = lines[:first], [], []
        for line in lines[first:]:
            block.append(line)
            if not line.startswith("#"):
                blocks.append(block)
                block = []
        if live and len(blocks) > LIVE_SEGMENTS:
            dropped = len(blocks) - LIVE_SEGMENTS
            blocks = blocks[dropped:]
            header = [re.sub(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)",
                             lambda m: f"#EXT-X-MEDIA-SEQUENCE:{int(m[1]) + dropped}", h) for h in header]
        pdts = [datetime.fromisoformat(next(x for x in b if x.startswith("#EXT-X-PROGRAM-DATE-TIME")).split(":", 1)[1]
                                       .replace("+0000", "+00:00")) for b in blocks]
        with self._lock:
            breaks = list(self.breaks)
        out = list(header)
        for i, b in enumerate(blocks):
            tags: list[str] = []
            for brk in breaks:
                start = self._aligned(brk, pdts)
                if start is None:
                    continue
                end = start + timedelta(seconds=brk["duration"])
                iso = start.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                if i == 0 and start < pdts[0] < end:
                    # The out left the window: its DATERANGE stays while the break is listed.
                    tags.append(f'#EXT-X-DATERANGE:ID="{brk["id"]}",START-DATE="{iso}",'
                                f'PLANNED-DURATION={brk["duration"]:.3f},SCTE35-OUT={brk["scte35"]}')
                if pdts[i] == start:
                    tags += [f"#EXT-X-CUE-OUT:DURATION={brk['duration']:.3f}",
                             f'#EXT-X-DATERANGE:ID="{brk["id"]}",START-DATE="{iso}",'
                             f'PLANNED-DURATION={brk["duration"]:.3f},SCTE35-OUT={brk["scte35"]}']
                elif start < pdts[i] < end:
                    tags.append(f"#EXT-X-CUE-OUT-CONT:ElapsedTime={(pdts[i] - start).total_seconds():.3f},"
                                f"Duration={brk['duration']:.3f}")
                elif i and pdts[i - 1] < end <= pdts[i]:
                    tags += ["#EXT-X-CUE-IN", f'#EXT-X-DATERANGE:ID="{brk["id"]}",START-DATE="{iso}",'
                             f'END-DATE="{end.isoformat(timespec="milliseconds").replace("+00:00", "Z")}",'
                             f'DURATION={brk["duration"]:.3f},SCTE35-IN={brk["in_hex"]}']
            pdt_at = next(j for j, x in enumerate(b) if x.startswith("#EXT-X-PROGRAM-DATE-TIME"))
            # Tags go after the segment's PROGRAM-DATE-TIME (a playlist with DATERANGE carries PDT before it).
            out += b[:pdt_at + 1] + tags + b[pdt_at + 1:] if tags else b
        return "\n".join(out) + "\n"

    @staticmethod
    def _aligned(brk: dict[str, Any], pdts: list[datetime]) -> datetime | None:
        """The splice lands on the first segment boundary at or after the requested time."""
        if "aligned" not in brk:
            later = [p for p in pdts if p >= brk["at"]]
            if not later:
                return None
            brk["aligned"] = later[0]
        return brk["aligned"]

    def _with_event_stream(self, body: bytes) -> bytes:
        text = body.decode()
        if "suggestedPresentationDelay" not in text:
            # As the packager's MPD does: players hold three segments back from the live edge.
            text = text.replace('type="dynamic"', 'type="dynamic" suggestedPresentationDelay="PT6S"', 1)
        with self._lock:
            breaks = list(self.breaks)
        if not breaks:
            return text.encode()
        ast_match = re.search(r'availabilityStartTime="([^"]+)"', text)
        assert ast_match, "a dynamic MPD carries availabilityStartTime"
        ast = datetime.fromisoformat(ast_match.group(1).replace("Z", "+00:00"))
        now = datetime.now(UTC)
        events = []
        for b in breaks:
            at = (b["at"] - ast).total_seconds()
            events.append(f'<Event presentationTime="{round(at * 90000)}" duration="{round(b["duration"] * 90000)}" '
                          f'id="{b["splice_event_id"]}"><Signal xmlns="http://www.scte.org/schemas/35/2016">'
                          f'<Binary>{b["base64"]}</Binary></Signal></Event>')
            if now >= b["at"] + timedelta(seconds=b["duration"]):
                # The return as its own event: a player must tell it from the out by the payload.
                events.append(f'<Event presentationTime="{round((at + b["duration"]) * 90000)}" duration="0" '
                              f'id="{1000 + b["splice_event_id"]}"><Signal xmlns="http://www.scte.org/schemas/35/2016">'
                              f'<Binary>{b["in_base64"]}</Binary></Signal></Event>')
        stream = (f'<EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="90000">{"".join(events)}'
                  "</EventStream>")
        # EventStream comes first in a Period (before any AdaptationSet), per the MPD schema.
        return re.sub(r"(<Period[^>]*>)", lambda m: m.group(1) + stream, text, count=1).encode()


# The record playback() reads: a real one, so a field playback() starts reading is there (a stand-in
# namespace lacked run_no once, part_duration later: both broke every signed-origin test).
RUNNING_CHANNEL = records.ChannelRecord(id=CHANNEL, state=records.RUNNING, run_no=1)


class StandInApi:
    """The control-API calls the page makes. Playback goes through the real use case
    (chalicelib.control.channels.playback) with the real signer, so the grants are the API's own."""

    def __init__(self, origin: LiveOrigin, private_pem: str) -> None:
        self.origin = origin
        self.signer = CloudFrontPolicySigner(demo.SIGNING_KEY_PAIR_ID, private_pem)
        self.playback_base = ""  # the demo server's /origin, known once it listens
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    def playback(self, mode: str | None) -> dict[str, Any]:
        ctl = SimpleNamespace(settings=SimpleNamespace(playback_base_url=self.playback_base, playback_cookie_domain=""),
                              store=SimpleNamespace(get=lambda channel_id: RUNNING_CHANNEL), signer=self.signer,
                              clock=lambda: datetime.now(UTC), signed_url_ttl=600)
        return channels.playback(ctl, CHANNEL, mode)  # type: ignore[arg-type]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api, counter = self, itertools.count()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _json(self, status: int, body: Any, cookies: list[str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for cookie in cookies or []:
                    self.send_header("Set-Cookie", cookie)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if self.headers.get("x-api-key") != demo.LOCAL_API_KEY:
                    self._json(401, {"Message": "missing or wrong x-api-key"})
                elif path == f"/channels/{CHANNEL}/status":
                    self._json(200, {"id": CHANNEL, "state": "RUNNING", "live_window": 10, "polls": next(counter)})
                elif path == f"/channels/{CHANNEL}/playback":
                    mode = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("mode")
                    body = api.playback(mode)
                    self._json(200, {k: v for k, v in body.items() if k != "set_cookie"}, body.get("set_cookie"))
                else:
                    self._json(404, {"Message": f"no route {self.path}"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.headers.get("x-api-key") != demo.LOCAL_API_KEY:
                    self._json(401, {"Message": "missing or wrong x-api-key"})
                elif self.path == f"/channels/{CHANNEL}/ad-breaks" and body.get("kind") == "splice_insert":
                    self._json(201, api.origin.add_break(float(body["duration"])))
                else:
                    self._json(400, {"Message": f"unexpected {self.path} {body}"})

        return Handler


# The wall clock burned into the picture, so latency is visible in screenshots.
CLOCK_FILTER = (
    "drawtext=text='%{gmtime\\:%H\\\\\\:%M\\\\\\:%S} UTC  frame %{n}':x=10:y=h-30:fontsize=16:"
    "fontcolor=white:box=1:boxcolor=black@0.6"
)


def live_encoder_argv(fmt: str, out: Path) -> list[str]:
    """A tiny real-time live encoder: 320x180 and 160x90 renditions (burned-in clock), ffmpeg's own
    live HLS (fMP4, program date time) or DASH (SegmentTimeline), 30 segments of DVR."""
    # ffmpeg's DASH muxer cuts AAC at its own frame boundaries (2.021 s audio vs 2.000 s video
    # segments), and dash.js sometimes stalls on the drift at a boundary. That is the fixture
    # muxer's artefact, not the page's, so the DASH stand-in is video only.
    audio = [] if fmt == "dash" else ["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"]
    audio_maps = [] if fmt == "dash" else ["-map", "1:a", "-map", "1:a", "-c:a", "aac", "-b:a", "64k"]
    common = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", *audio,
        "-filter_complex", f"[0:v]{CLOCK_FILTER},split=2[hi][x];[x]scale=160:90[lo]",
        "-map", "[hi]", "-map", "[lo]", *audio_maps,
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
        "-b:v:0", "400k", "-b:v:1", "120k", "-t", "240",
    ]  # fmt: skip
    if fmt == "dash":
        return [*common, "-f", "dash", "-seg_duration", "2", "-window_size", "30", "-extra_window_size", "4",
                "-use_template", "1", "-use_timeline", "1", "-adaptation_sets", "id=0,streams=v",
                str(out / "manifest.mpd")]
    return [*common, "-f", "hls", "-hls_time", "2", "-hls_list_size", "30",
            "-hls_segment_type", "fmp4", "-hls_flags", "delete_segments+program_date_time+independent_segments",
            "-master_pl_name", "master.m3u8", "-var_stream_map", "v:0,a:0 v:1,a:1",
            "-hls_segment_filename", str(out / "v%v" / "seg%05d.m4s"), str(out / "v%v" / "index.m3u8")]


@pytest.fixture
def signed_origin(request: pytest.FixtureRequest, tmp_path: Path, browser_ready: None) -> Iterator[dict[str, Any]]:
    """A live origin behind the demo server with signing enforced, a stand-in API that signs, a CMCD log."""
    fmt: str = request.param
    out = tmp_path / "origin" / CHANNEL
    out.mkdir(parents=True)
    proc = subprocess.Popen(live_encoder_argv(fmt, out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    first = out / ("manifest.mpd" if fmt == "dash" else "master.m3u8")
    private, public = demo.signing_key_pair()
    origin = LiveOrigin(tmp_path / "origin", fmt)
    api = StandInApi(origin, private)
    threading.Thread(target=api.server.serve_forever, daemon=True).start()
    log = RealtimeLog(tmp_path / "cdn-realtime.jsonl")
    config = demo.ServerConfig(web_root=demo.WEB, origin=origin, api_base=f"http://127.0.0.1:{api.server.server_address[1]}",
                               trusted_keys=TrustedKeys({demo.SIGNING_KEY_PAIR_ID: public}), realtime_log=log)
    try:
        demo.wait_until(f"ffmpeg's first live {fmt} manifest", first.exists, 30)
        with demo.serving(config) as base:
            api.playback_base = f"{base}/origin"
            yield {"base": base, "origin": origin, "api": api, "log": log.path, "format": fmt, "out": out}
    finally:
        api.server.shutdown()
        api.server.server_close()
        proc.terminate()
        proc.wait(timeout=10)


ENGINE_RUNS = [  # (origin format, engine, how the grant travels)
    pytest.param("hls", "hlsjs", "cookie", id="hlsjs-hls-cookie"),
    pytest.param("dash", "dashjs", "query", id="dashjs-dash-query"),
    pytest.param("dash", "shaka", "cookie", id="shaka-dash-cookie"),
    pytest.param("hls", "shaka", "query", id="shaka-hls-query"),
]


@pytest.mark.parametrize(("signed_origin", "engine", "signing"), ENGINE_RUNS, indirect=["signed_origin"])
def test_given_a_signed_live_origin_when_an_engineer_works_the_page_then_every_tool_reports_what_the_stream_does(
    signed_origin: dict[str, Any], run_player: Any, engine: str, signing: str, capsys: pytest.CaptureFixture[str],
) -> None:
    fmt = signed_origin["format"]
    base, origin = signed_origin["base"], signed_origin["origin"]
    # Unsigned, the edge refuses every object of the channel; the API's grant opens them.
    segment = next(p for p in sorted(signed_origin["out"].rglob("*.m4s")))
    url = f"{base}/origin/{CHANNEL}/{segment.relative_to(signed_origin['out'])}"
    status, body = fetch(url)
    assert status == 403 and json.loads(body)["message"] == "Missing Key-Pair-Id query parameter or cookie value"
    grant = signed_origin["api"].playback("query")
    assert fetch(f"{url}?{grant['query']}")[0] == 200

    screenshot = Path(__file__).resolve().parents[3] / ".demo" / "screenshots" / f"player-{engine}-{fmt}.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    report = run_player(f"{base}/player.html?channel={CHANNEL}", play=15, engine=engine, fmt=fmt, signing=signing,
                        full=True, start_timeout=60, marker_timeout=30, screenshot=screenshot)
    summary = {k: report.get(k) for k in (
        "failures", "startupSeconds", "progressed", "wallSeconds", "stalls", "latency", "renditions",
        "manualRendition", "breakStatusSeen", "breaksSeen", "timelineBreaks", "liveRange", "dvrRange", "dvrSource",
        "engineConfig", "playback", "screenshot")}
    print("player report:", json.dumps(summary))
    assert report["ok"], {k: report.get(k) for k in ("failures", "errors", "log", "markers", "console")}
    assert (report["engine"], report["format"]) == (engine, fmt)
    # Signed playback: the page asked for the grant in this mode and played through the enforcing edge.
    assert report["playback"] == {"signed": True, "mode": signing}
    assert report["progressed"] >= 0.85 * report["wallSeconds"] and report["stalls"] == 0
    assert report["latency"] is not None and 0 < report["latency"] < 20

    # Stats and charts: buffer ahead, dropped frames counted, and every chart has samples.
    stats, history = report["stats"], report["stats"]["history"]
    buffer = [b for b in history["buffer"] if b is not None]
    assert max(buffer) > 1.0 and min(buffer) >= 0, buffer
    assert stats["totalFrames"] > 100 and 0 <= stats["droppedFrames"] <= stats["totalFrames"]
    dropped = [d for d in history["dropped"] if d is not None]
    assert dropped == sorted(dropped), "dropped frames is a running total"
    assert all(0 < (b or 1) < 100_000 for b in history["bitrate"])  # kb/s of a rendition the engine plays
    assert stats["playbackRate"] > 0
    assert report["chartCanvases"] >= 5
    for series in ("buffer", "dropped", "bitrate", "latency", "rate"):
        assert stats["charts"][series] >= 5, (series, stats["charts"])

    # Renditions: both offered, the lowest one chosen by hand really plays, ABR comes back.
    assert sorted(r["height"] for r in report["renditions"]) == [90, 180]
    assert report["manualRendition"]["height"] == 90
    assert report["abrAfterToggle"]["page"] is True

    # The break the button created: one marker on the seek bar, joined across dialects.
    brk = origin.breaks[0]
    assert report["adBreakResponse"]["id"] == brk["id"]
    assert report["marker"]["kind"] == "out" and report["marker"]["duration"] == pytest.approx(30.0)
    assert re.fullmatch(r"in break, elapsed [0-9.]+ s of 30\.0 s", report["breakStatusSeen"])
    assert re.fullmatch(r"in break, elapsed [0-9.]+ s of 30\.0 s", report["breakStatusText"])
    assert report["timelineBreaks"] >= 1
    [seen] = [b for b in report["breaksSeen"] if b["duration"] == pytest.approx(30.0)]
    if fmt == "hls" and engine == "hlsjs":
        assert seen["sources"] == ["cue", "daterange"], seen  # CUE-OUT(-CONT) and DATERANGE: one break
        assert brk["id"] in seen["ids"]
    elif fmt == "hls":
        assert "daterange" in seen["sources"] and brk["id"] in seen["ids"], seen
    else:
        assert seen["sources"] == ["dash-event"] and seen["eventId"] == str(brk["splice_event_id"])

    # DVR: HLS moves to dvr.m3u8; either way the seek window widens beyond the live window.
    live, dvr = report["liveRange"], report["dvrRange"]
    assert dvr is not None, report.get("failures")
    if fmt == "hls":
        assert "/dvr.m3u8" in report["dvrSource"] and "/master.m3u8" in report["liveSource"]
    assert dvr["end"] - dvr["start"] > live["end"] - live["start"] + 4, (live, dvr)

    # Engine config: hls.js on load policies (none of the obsolete *MaxRetry options); CMCD everywhere.
    config = report["engineConfig"]
    assert config["cmcd"] is True
    if engine == "hlsjs":
        assert set(config["loadPolicies"]) >= {"manifestLoadPolicy", "playlistLoadPolicy", "fragLoadPolicy"}
        assert config["legacyRetryOptions"] == []

    # CMCD reached the edge on the page's requests (query mode), with the page's session and the
    # channel as content id, and `slipstream qoe` summarises the session from that log.
    records = [json.loads(line) for line in signed_origin["log"].read_text().splitlines()]
    mine = [r for r in records if r["cmcd-session-id"] == report["cmcdSession"]]
    assert mine, f"no request carried CMCD session {report['cmcdSession']!r}"
    assert {r["cmcd-content-id"] for r in mine} == {CHANNEL}
    video = [r for r in mine if r["cmcd-object-type"] in ("v", "av") and r["sc-status"] == "200"]
    assert len(video) >= 10 and all(r["cmcd-encoded-bitrate"] != "-" for r in video)
    formats = [r["cmcd-streaming-format"] for r in video]
    assert set(formats) - {"-"} == {"h" if fmt == "hls" else "d"}
    # shaka leaves sf off the odd request (2 of 15 here); the others always send it.
    assert formats.count("-") <= len(formats) // 4, [(r["cs-uri-stem"], r["cs-uri-query"]) for r in video
                                                      if r["cmcd-streaming-format"] == "-"]
    assert "CMCD=" in video[0]["cs-uri-query"]
    assert {r["x-slipstream-grant"] for r in mine if r["sc-status"] == "200"} == {signing}
    capsys.readouterr()
    assert slipstream(["--json", "qoe", CHANNEL, "--log", str(signed_origin["log"])]) == 0
    qoe = json.loads(capsys.readouterr().out)
    [session] = [s for s in qoe["sessions"] if s["session_id"] == report["cmcdSession"]]
    # Steady play never starved (the page saw no stall); the two flushes the test asked for may:
    # the manual switch (hls.js, dash.js and shaka drop the buffer ahead) and the DVR reload.
    assert session["video_seconds"] >= 10 and session["rebuffers"] <= 2, (session, [
        (r["cs-uri-stem"], r["cmcd-object-type"], r["cmcd-buffer-length"]) for r in mine
        if r["cmcd-buffer-starvation"] != "-"])
    assert 100 <= session["bitrate_kbps"]["min"] <= session["bitrate_kbps"]["average"] <= session["bitrate_kbps"]["max"]
    assert session["bitrate_kbps"]["switches"] >= 1  # the manual switch to 160x90 is in the log


# --------------------------------------------------------------------------- the whole demo stack
@pytest.fixture(scope="module")
def demo_stack(browser_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[demo.DemoStack]:
    """One signed demo stack for every engine (start-up is most of the cost); each test inserts its own break."""
    work = tmp_path_factory.mktemp("demo")
    stack = demo.start_demo(channel_id=CHANNEL, work_dir=work, startup_timeout=240, signed=True)
    try:
        yield stack
    finally:
        stack.stop()


def test_given_signed_make_demo_then_an_unsigned_fetch_is_refused_and_the_apis_grant_opens_the_channel(
    demo_stack: demo.DemoStack,
) -> None:
    """The API signs with the key in (emulated) SSM; the origin checks with the key group's public key."""
    origin = f"{demo_stack.base_url}/origin/{CHANNEL}"
    status, body = fetch(f"{origin}/master.m3u8")
    assert status == 403 and json.loads(body)["message"] == "Missing Key-Pair-Id query parameter or cookie value"
    grant = demo.call_api(demo_stack.api_url, "GET", f"/channels/{CHANNEL}/playback?mode=query")[1]
    assert grant["signed"] is True and grant["resource"] == f"{origin}/*"
    status, master = fetch(grant["hls"])
    assert status == 200, master
    # A variant playlist and a segment the packager wrote, whatever their URL shape: one grant each.
    variant = next(line for line in master.decode().splitlines() if line and not line.startswith("#"))
    status, playlist = fetch(f"{origin}/{variant}?{grant['query']}")
    assert status == 200
    segment = next(line for line in playlist.decode().splitlines() if line.endswith(".m4s"))
    segment_url = f"{origin}/{variant.rsplit('/', 1)[0]}/{segment}" if "/" in variant else f"{origin}/{segment}"
    assert fetch(segment_url)[0] == 403
    assert fetch(f"{segment_url}?{grant['query']}")[0] == 200
    # The cookie carrier: the same grant as CloudFront-* cookies.
    cookies = demo.call_api(demo_stack.api_url, "GET", f"/channels/{CHANNEL}/playback")[1]["cookies"]
    assert fetch(segment_url, "; ".join(f"{k}={v}" for k, v in cookies.items()))[0] == 200


@pytest.mark.xdist_group("browser-demo-stack")  # --dist loadgroup: every engine shares one stack
@pytest.mark.parametrize(("engine", "fmt", "signing"), [
    ("hlsjs", "hls", "cookie"), ("dashjs", "dash", "query"), ("shaka", "dash", "cookie")])
def test_given_make_demo_when_a_viewer_watches_and_inserts_an_ad_break_then_playback_is_smooth_and_marked(
    demo_stack: demo.DemoStack, run_player: Any, engine: str, fmt: str, signing: str
) -> None:
    # An 8 s break: over before the next test's click (the API refuses overlapping breaks with 409).
    shot = Path(__file__).resolve().parents[3] / ".demo" / "screenshots" / f"demo-{engine}-{fmt}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    report = run_player(demo_stack.url + "&adDuration=8", play=20, ad_break=True, fmt=fmt, engine=engine,
                        signing=signing, start_timeout=120, marker_timeout=90, screenshot=shot)
    print("player report:", json.dumps({k: report.get(k) for k in (
        "startupSeconds", "progressed", "wallSeconds", "stalls", "stallEvents", "latency", "edgeLatency",
        "rendition", "marker", "markerSeenAfter", "playback", "breaks", "screenshot")}))
    assert report["ok"], {k: report.get(k) for k in ("failures", "errors", "log", "markers", "console")}
    assert report["stalls"] == 0
    assert report["progressed"] >= 0.85 * report["wallSeconds"]
    assert report["channelState"] == "RUNNING"
    assert (report["engine"], report["format"]) == (engine, fmt)
    # A signed viewer: the real API's grant, through the enforcing origin, in the asked carrier.
    assert report["playback"] == {"signed": True, "mode": signing}
    # The marker is the break the button created (DATERANGE/CUE for HLS, EventStream for DASH).
    created = report["adBreakResponse"]
    assert report["marker"]["kind"] == "out"
    assert report["marker"]["duration"] == pytest.approx(created["duration"])
    if fmt == "dash":
        assert report["marker"]["eventId"] == str(created["splice_event_id"])
    else:
        [brk] = [b for b in report["breaks"] if b["eventId"] == str(created["splice_event_id"])]
        # The channel's marker_style "both": DATERANGE (announced with the last segment before the
        # splice) and, once hls.js has parsed the out segment, CUE-OUT: one break either way.
        assert "daterange" in brk["sources"] and set(brk["sources"]) <= {"cue", "daterange"}
        assert len([b for b in report["breaks"] if abs(b["start"] - brk["start"]) <= 1.0]) == 1
        # Whether or not hls.js got to parse it, the CUE-OUT dialect is on the origin: once the break is
        # over, the DVR playlist holds its DATERANGE, then its CUE-OUT (with its duration) within two
        # segments, then its CUE-IN. Polled: the 8 s break may still be running when the viewer stops.
        origin = f"{demo_stack.base_url}/origin/{CHANNEL}"
        grant = demo.call_api(demo_stack.api_url, "GET", f"/channels/{CHANNEL}/playback?mode=query")[1]
        master = fetch(grant["hls"])[1].decode()
        variant = next(line for line in master.splitlines() if line and not line.startswith("#"))
        dvr = variant.split("?", 1)[0].rsplit("/", 1)[0] + "/dvr.m3u8"
        after: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, text = fetch(f"{origin}/{dvr}?{grant['query']}")
            assert status == 200, text
            lines = text.decode().splitlines()
            at = next((i for i, ln in enumerate(lines) if ln.startswith("#EXT-X-DATERANGE:")
                       and f'ID="{created["id"]}"' in ln and "SCTE35-OUT" in ln), None)
            after = lines[at:] if at is not None else []
            if "#EXT-X-CUE-IN" in after:
                break
            time.sleep(1)
        assert "#EXT-X-CUE-IN" in after, after[:40]
        uris = [i for i, ln in enumerate(after) if ln and not ln.startswith("#")]
        cue = [ln for ln in after[:uris[1]] if ln.startswith("#EXT-X-CUE-OUT:")]
        assert cue and re.fullmatch(r"#EXT-X-CUE-OUT:(DURATION=)?8(\.0+)?", cue[0]), after[:12]
    # Glass-to-glass latency (PROGRAM-DATE-TIME / MPD clock vs now): positive and bounded.
    assert report["latency"] is not None and 0 < report["latency"] < 30
    # Every origin request of this viewer is in the CDN log with its CMCD session.
    records = [json.loads(line) for line in demo_stack.realtime_log.read_text().splitlines()]  # type: ignore[union-attr]
    mine = [r for r in records if r["cmcd-session-id"] == report["cmcdSession"]]
    assert mine and {r["x-slipstream-grant"] for r in mine if r["sc-status"] == "200"} == {signing}
