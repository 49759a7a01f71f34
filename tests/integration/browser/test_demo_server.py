"""devtools/demo.py's moving parts on loopback: the one-port server, prerequisites, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from devtools import demo

pytestmark = pytest.mark.integration


def fetch(url: str, method: str = "GET", body: bytes | None = None,
          headers: Mapping[str, str] | None = None) -> tuple[int, Mapping[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class RecordingApi(BaseHTTPRequestHandler):
    """Stands in for `chalice local`: records what the proxy forwarded, answers like the API."""

    seen: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": self.command, "path": self.path, "key": self.headers.get("x-api-key"),
                          "body": body.decode()})
        status = 409 if self.path.endswith("/start") else 200
        data = json.dumps({"Code": "Conflict", "Message": "channel is CREATING"} if status == 409 else {"ok": 1})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if "/playback" in self.path:  # like the API on a signing stage (chalice sends one header per cookie)
            self.send_header("Set-Cookie", "CloudFront-Policy=p; Path=/origin/demo/; HttpOnly; SameSite=Lax")
            self.send_header("Set-Cookie", "CloudFront-Signature=s; Path=/origin/demo/; HttpOnly; SameSite=Lax")
        self.end_headers()
        self.wfile.write(data.encode())

    do_GET = do_POST = _answer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    origin = tmp_path / "origin"
    (origin / "demo" / "360p").mkdir(parents=True)
    (origin / "demo" / "master.m3u8").write_text("#EXTM3U\n")
    (origin / "demo" / "360p" / "000000000001.m4s").write_bytes(b"\x00\x00\x00\x08styp")
    (tmp_path / "secret.txt").write_text("not for the browser")
    RecordingApi.seen = []
    api = ThreadingHTTPServer(("127.0.0.1", 0), RecordingApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    config = demo.ServerConfig(web_root=demo.WEB, origin=demo.DirectoryObjectSource(origin),
                               api_base=f"http://127.0.0.1:{api.server_address[1]}")
    try:
        with demo.serving(config) as base:
            yield base
    finally:
        api.shutdown()
        api.server_close()


def test_the_root_sends_the_viewer_to_the_player_keeping_the_channel(server: str) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(f"{server}/?channel=demo", timeout=10)
    assert info.value.code == 302
    assert info.value.headers["Location"] == "/player.html?channel=demo"


def test_the_page_its_modules_the_three_players_and_the_charts_are_served_with_script_types(server: str) -> None:
    status, headers, body = fetch(f"{server}/player.html")
    assert status == 200 and b'data-testid="insert-ad-break"' in body
    for path in ("/vendor/hls.js/dist/hls.min.js", "/vendor/dashjs/dist/modern/umd/dash.all.min.js",
                 "/vendor/shaka-player/dist/shaka-player.compiled.js", "/vendor/uplot/dist/uPlot.iife.min.js",
                 "/player.js", "/js/engines/hlsjs.js", "/js/engines/dashjs.js", "/js/engines/shaka.js",
                 "/js/markers.js", "/js/scte35.js", "/js/charts.js", "/js/timeline.js"):
        status, headers, _ = fetch(server + path)
        assert status == 200, path
        assert headers["Content-Type"].startswith("text/javascript"), path


def test_only_the_player_packages_and_page_files_are_served(server: str) -> None:
    for path in ("/vendor/playwright-core/package.json", "/vendor/hls.js/package.json", "/../secret.txt",
                 "/%2e%2e/secret.txt", "/vendor/hls.js/../../../devtools/demo.py", "/package.json"):
        status, _, body = fetch(server + path)
        assert status == 404, path
        assert b"not for the browser" not in body


def test_origin_objects_carry_the_media_type_a_player_needs(server: str) -> None:
    status, headers, body = fetch(f"{server}/origin/demo/master.m3u8")
    assert (status, headers["Content-Type"], body) == (200, "application/vnd.apple.mpegurl", b"#EXTM3U\n")
    status, headers, _ = fetch(f"{server}/origin/demo/360p/000000000001.m4s")
    assert (status, headers["Content-Type"]) == (200, "video/iso.segment")


def test_a_segment_not_yet_published_is_a_briefly_cached_404(server: str) -> None:
    status, headers, body = fetch(f"{server}/origin/demo/360p/000000000002.m4s")
    assert status == 404
    assert headers["Cache-Control"] == "max-age=1"
    assert "not published" in json.loads(body)["error"]


def test_ll_hls_paths_go_to_the_ll_origin_handler_with_their_query_and_everything_else_to_the_bucket(
    tmp_path: Path,
) -> None:
    """The demo's stand-in for CloudFront's */ll.m3u8 and *.?.m4s behaviours: the LL origin's own handler
    answers them (status, headers, body passed through); segments and regular playlists stay on the bucket."""
    from chalicelib.pipeline.llorigin import Request, Response

    seen: list[Request] = []

    def ll_origin(request: Request) -> Response:
        seen.append(request)
        if request.path.endswith(".m4s"):
            return Response(404, {"Content-Type": "application/json", "Cache-Control": "max-age=1"}, b'{"x": 1}')
        return Response(200, {"Content-Type": "application/vnd.apple.mpegurl", "Cache-Control": "public, max-age=12",
                              "CMSD-Static": "ht=40"}, b"#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.563\n")

    origin = tmp_path / "origin"
    (origin / "demo" / "360p" / "r1").mkdir(parents=True)
    (origin / "demo" / "360p" / "r1" / "00000001.m4s").write_bytes(b"\x00\x00\x00\x08styp")
    (origin / "demo" / "master.m3u8").write_text("#EXTM3U\n")
    config = demo.ServerConfig(web_root=demo.WEB, origin=demo.DirectoryObjectSource(origin), api_base="",
                               ll_origin=ll_origin)
    with demo.serving(config) as base:
        status, headers, body = fetch(f"{base}/origin/demo/360p/ll.m3u8?_HLS_msn=12&_HLS_part=3&CMCD=sid%3D%22x%22")
        assert (status, headers["Cache-Control"], headers["CMSD-Static"]) == (200, "public, max-age=12", "ht=40")
        assert body.startswith(b"#EXTM3U") and headers["Access-Control-Allow-Origin"] == "*"
        assert fetch(f"{base}/origin/demo/360p/r1/00000002.1.m4s")[0] == 404
        assert fetch(f"{base}/origin/demo/ll.m3u8")[0] == 200
        # Not LL: the bucket, as before.
        assert fetch(f"{base}/origin/demo/360p/r1/00000001.m4s")[:1] == (200,)
        assert fetch(f"{base}/origin/demo/master.m3u8")[2] == b"#EXTM3U\n"
    assert [(r.path, dict(r.query).get("_HLS_msn"), dict(r.query).get("_HLS_part")) for r in seen] == [
        ("/demo/360p/ll.m3u8", "12", "3"), ("/demo/360p/r1/00000002.1.m4s", None, None), ("/demo/ll.m3u8", None, None)]


def test_the_api_proxy_adds_the_local_key_and_passes_status_and_body_through(server: str) -> None:
    status, _, body = fetch(f"{server}/api/channels/demo/ad-breaks", "POST", b'{"duration": 30}',
                            {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"ok": 1}
    status, _, body = fetch(f"{server}/api/channels/demo/start", "POST", b"")
    assert status == 409 and json.loads(body)["Message"] == "channel is CREATING"
    first = RecordingApi.seen[0]
    assert first == {"method": "POST", "path": "/channels/demo/ad-breaks", "key": demo.LOCAL_API_KEY,
                     "body": '{"duration": 30}'}


def test_the_apis_signed_cookies_reach_the_browser_through_the_proxy(server: str) -> None:
    with urllib.request.urlopen(f"{server}/api/channels/demo/playback", timeout=10) as r:
        cookies = r.headers.get_all("Set-Cookie")
    assert cookies == ["CloudFront-Policy=p; Path=/origin/demo/; HttpOnly; SameSite=Lax",
                       "CloudFront-Signature=s; Path=/origin/demo/; HttpOnly; SameSite=Lax"]


def test_a_signing_origin_refuses_unsigned_requests_and_logs_each_with_its_cmcd(tmp_path: Path) -> None:
    from chalicelib.control.adapters import CloudFrontPolicySigner
    from devtools.edge import RealtimeLog, TrustedKeys

    origin = tmp_path / "origin" / "demo" / "360p"
    origin.mkdir(parents=True)
    (origin / "00000001.m4s").write_bytes(b"\x00\x00\x00\x08styp")
    private, public = demo.signing_key_pair()
    log = RealtimeLog(tmp_path / "cdn.jsonl")
    config = demo.ServerConfig(web_root=demo.WEB, origin=demo.DirectoryObjectSource(tmp_path / "origin"), api_base="",
                               trusted_keys=TrustedKeys({"K1": public}), realtime_log=log)
    with demo.serving(config) as base:
        grant = CloudFrontPolicySigner("K1", private).grant(f"{base}/origin/demo/*",
                                                            datetime.now(UTC) + timedelta(minutes=5))
        segment = f"{base}/origin/demo/360p/00000001.m4s?CMCD=" + quote('br=800,d=2000,ot=v,sid="v1"')
        status, headers, body = fetch(segment)
        assert status == 403 and headers["Cache-Control"] == "no-store"
        assert json.loads(body)["message"] == "Missing Key-Pair-Id query parameter or cookie value"
        assert fetch(f"{segment}&{grant.query()}")[0] == 200
        cookie = "; ".join(f"{k}={v}" for k, v in grant.cookies().items())
        assert fetch(segment, headers={"Cookie": cookie})[0] == 200
        assert fetch(segment.replace("/demo/", "/other/"), headers={"Cookie": cookie})[0] == 403
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [(r["sc-status"], r["x-slipstream-grant"]) for r in records] == [
        ("403", "-"), ("200", "query"), ("200", "cookie"), ("403", "cookie")]
    first = records[0]
    assert first["cs-uri-stem"] == "/origin/demo/360p/00000001.m4s"
    assert (first["cmcd-encoded-bitrate"], first["cmcd-object-type"], first["cmcd-session-id"]) == ("800", "v", "v1")
    assert first["cmcd-buffer-length"] == "-"  # absent keys are "-", as CloudFront prints them


def test_writes_outside_the_api_are_refused(server: str) -> None:
    status, _, body = fetch(f"{server}/origin/demo/master.m3u8", "POST", b"x")
    assert status == 405 and b"/api/" in body


def test_missing_tools_fail_with_the_install_command() -> None:
    with pytest.raises(demo.DemoError, match=r"ffmpeg.*sudo apt-get install -y ffmpeg"):
        demo.check_prerequisites(which=lambda name: None if name == "ffmpeg" else f"/usr/bin/{name}")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("this machine has no /usr/bin/chromium to hide")
    # chromium is checked by path too, so only a missing PATH entry is not enough to fail here.
    demo.check_prerequisites(which=lambda name: None if name == "chromium" else f"/usr/bin/{name}")


def test_the_demo_rejects_a_hostile_channel_id_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--channel", "../etc", "--no-push", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert "demo: error: invalid channel id" in err


def test_stopping_reaches_grandchildren_in_the_process_group(tmp_path: Path) -> None:
    """chalice local and the push helper start children of their own; none may outlive the demo."""
    children = demo.Children(log_dir=tmp_path)
    pidfile = tmp_path / "grandchild.pid"
    script = (f"import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
              f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(300)")
    parent = children.start("parent", [sys.executable, "-c", script], os.environ)
    demo.wait_until("the grandchild", pidfile.exists, 10)
    grandchild = int(pidfile.read_text())
    children.stop(grace=2)
    assert parent.poll() is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.1)
    assert not _alive(grandchild), "the grandchild outlived the demo"


def test_a_child_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    children = demo.Children(log_dir=tmp_path)
    children.start("broken", [sys.executable, "-c", "import sys; print('port already in use'); sys.exit(3)"],
                   os.environ)
    time.sleep(1.0)
    with pytest.raises(demo.DemoError, match="broken exited with code 3: port already in use"):
        children.check()
    children.stop()


def test_sigterm_stops_the_demo_and_everything_it_started() -> None:
    """`make demo`'s main loop with a stand-in stack: it prints one URL, and SIGTERM (what a supervisor
    or Ctrl-C sends) makes it exit 0 with no child left behind."""
    env = {**os.environ, "PYTHONPATH": str(demo.ROOT)}
    script = (
        "import sys\n"
        "from devtools import demo\n"
        "def fake_start(channel_id, port, push, **options):\n"
        "    c = demo.Children()\n"
        "    p = c.start('sleeper', ['sleep', '300'], {})\n"
        "    print('sleeper', p.pid, file=sys.stderr, flush=True)\n"
        "    return demo.DemoStack(url='http://127.0.0.1:1/player.html?channel=' + channel_id, base_url='',\n"
        "                          api_url='', channel_id=channel_id, env={}, children=c)\n"
        "demo.start_demo = fake_start\n"
        "demo.check_prerequisites = lambda: None\n"
        "sys.exit(demo.main(['--no-push']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=demo.ROOT)
    assert proc.stderr is not None and proc.stdout is not None
    line = ""
    while not line.startswith("sleeper"):
        line = proc.stderr.readline()
        assert line, "the demo exited before starting its stack"
    sleeper = int(line.split()[1])
    url = proc.stdout.readline().strip()
    assert url == "http://127.0.0.1:1/player.html?channel=demo"
    assert _alive(sleeper)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stdout.read() == "", "stdout carries the one URL and nothing else"
    assert "demo: stopped" in proc.stderr.read()
    time.sleep(0.2)
    assert not _alive(sleeper)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
