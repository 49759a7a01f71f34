"""`make demo`: one command from a fresh clone to a live channel playing in a browser.

Starts the emulated AWS stack (devtools.localaws), deploys the functions into it, serves the
control API with `chalice local`, creates and starts a channel, pushes a live synthetic source
(testsrc2 with a burned-in clock, so glass-to-glass latency is visible on screen), and serves
one page on 127.0.0.1 that plays the channel. Prints exactly one URL on stdout; progress lines
go to stderr. Ctrl-C or SIGTERM stops every child (each runs in its own process group).

The page, the origin and the API share one port: the demo server proxies `/api/*` to
`chalice local` (so the page needs no CORS and never holds the API key) and serves `/origin/*`
from the emulated origin bucket, passing Content-Type and Cache-Control through like CloudFront.
Like a CloudFront edge it also logs every origin request with its CMCD (JSON lines with real-time
log field names, `.demo/logs/cdn-realtime.jsonl`, read by `slipstream qoe CHANNEL`) and, with
`--signed`, enforces a trusted key group: the API signs with a fresh key (private half in the
emulated SSM, like a stage's SecureString) and `/origin/*` answers 403 to anything unsigned.

    python -m devtools.demo [--duration SECONDS] [--no-push] [--channel ID] [--port N] [--signed]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mimetypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from devtools.edge import RealtimeLog, TrustedKeys

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
VENV_PY = ROOT / ".venv" / "bin" / "python"
LOCAL_API_KEY = "local-dev-key"  # API_KEYS of the "local" stage in .chalice/config.json
DEMO_CHANNEL = "demo"

# Only these packages of web/node_modules are served: the page needs the players and the charts.
VENDOR_PACKAGES = frozenset({"hls.js", "dashjs", "shaka-player", "uplot"})
SIGNING_KEY_PARAMETER = "/slipstream-local/playback-signing-key"  # the stage's SecureString, emulated
SIGNING_KEY_PAIR_ID = "K2SLIPSTREAMLOCAL"

# The origin's own Content-Type wins; these cover objects written without one.
MEDIA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".ts": "video/mp2t",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
}
WEB_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
             ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".map": "application/json", ".json": "application/json"}

# A missing object is usually "not published yet": cache the 404 about a second, like the CDN.
ERROR_CACHE_CONTROL = "max-age=1"


class DemoError(Exception):
    """The demo cannot run; the message says what to install or fix, in one line."""


def say(message: str) -> None:
    """Progress for the human at the terminal; stdout is reserved for the one URL."""
    print(f"demo: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- prerequisites
def check_prerequisites(need_browser: bool = True, which: Callable[[str], str | None] = shutil.which) -> None:
    """Fail early with the exact install command instead of half-starting a stack."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if which(tool) is None]
    if missing:
        raise DemoError(f"{' and '.join(missing)} not found -- install with: sudo apt-get install -y ffmpeg")
    if need_browser and which("chromium") is None and not Path("/usr/bin/chromium").exists():
        raise DemoError("chromium not found -- install with: sudo apt-get install -y chromium")
    for package in sorted(VENDOR_PACKAGES):
        if not (WEB / "node_modules" / package / "package.json").is_file():
            raise DemoError(f"web/node_modules/{package} missing -- install with: make deps (or: cd web && npm ci)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- children
@dataclass
class Children:
    """Child processes, each the leader of its own process group so a stop reaches grandchildren
    (chalice local's reloader, ffmpeg under the push helper) and a terminal Ctrl-C does not hit
    them before we stop them in order."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    log_dir: Path | None = None

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 -- lives as long as the child
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()  # the child holds its own descriptor
        self.procs.append((name, proc))
        return proc

    def check(self) -> None:
        """Raise if a child that should still be running has died (with its log's last lines)."""
        for name, proc in self.procs:
            if proc.poll() is not None and proc.returncode != 0:
                raise DemoError(f"{name} exited with code {proc.returncode}{self._tail(name)}")

    def _tail(self, name: str) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        lines = path.read_text(errors="replace").strip().splitlines()[-5:]
        return (": " + " | ".join(lines)) if lines else ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every group (newest first), wait, then SIGKILL what is left."""
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            # The group may outlive its leader (a grandchild that ignored SIGTERM).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


# --------------------------------------------------------------------------- demo HTTP server
class ObjectSource(Protocol):
    """Where /origin/* reads from: the emulated origin bucket, or a folder in tests."""

    def get(self, key: str) -> tuple[bytes, Mapping[str, str]]:
        """Body and headers (Content-Type, Cache-Control, ETag, Last-Modified); KeyError if absent."""
        ...


class S3ObjectSource:
    """Reads the origin bucket with boto3 (pointed at the emulator by AWS_ENDPOINT_URL)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def get(self, key: str) -> tuple[bytes, Mapping[str, str]]:
        from botocore.exceptions import ClientError

        try:
            obj = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(key) from None
            raise
        headers: dict[str, str] = {}
        if obj.get("ContentType"):
            headers["Content-Type"] = obj["ContentType"]
        if obj.get("CacheControl"):
            headers["Cache-Control"] = obj["CacheControl"]
        if obj.get("ETag"):
            headers["ETag"] = obj["ETag"]
        if obj.get("LastModified"):
            headers["Last-Modified"] = obj["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")
        return obj["Body"].read(), headers


class DirectoryObjectSource:
    """Serves a local folder as if it were the origin bucket (tests, offline previews)."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def get(self, key: str) -> tuple[bytes, Mapping[str, str]]:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root) or not path.is_file():
            raise KeyError(key)
        return path.read_bytes(), {}


@dataclass(frozen=True)
class ServerConfig:
    web_root: Path
    origin: ObjectSource
    api_base: str  # e.g. http://127.0.0.1:8123 (chalice local); "" disables /api
    api_key: str = LOCAL_API_KEY
    trusted_keys: TrustedKeys | None = None  # set: /origin/* demands a CloudFront signature
    realtime_log: RealtimeLog | None = None  # set: one JSON line per /origin/* request


def _media_type(path: str, table: Mapping[str, str]) -> str:
    suffix = Path(path).suffix.lower()
    return table.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


class DemoRequestHandler(BaseHTTPRequestHandler):
    """`/` -> the player; `/vendor/{hls.js,dashjs}/...`; `/origin/{key}`; `/api/{path}` -> chalice local;
    `/time` -> the server's UTC clock (DASH UTCTiming)."""

    server_version = "SlipstreamDemo/1"
    config: ServerConfig  # set on the subclass made by make_server()

    def log_message(self, format: str, *args: Any) -> None:  # the terminal shows progress, not access logs
        return

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def do_OPTIONS(self) -> None:
        self._send(HTTPStatus.NO_CONTENT, b"", {"Access-Control-Allow-Origin": "*",
                                                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                                                "Access-Control-Allow-Headers": "*"})

    def _route(self, head: bool = False) -> None:
        path = urlsplit(self.path).path
        try:
            if path.startswith("/api/"):
                self._proxy_api()
            elif self.command not in ("GET", "HEAD"):
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is only allowed on /api/")
            elif path in ("", "/"):
                query = urlsplit(self.path).query
                self._send(HTTPStatus.FOUND, b"", {"Location": "/player.html" + (f"?{query}" if query else "")})
            elif path == "/time":
                # UTCTiming source for dash.js (urn:mpeg:dash:utc:http-iso:2014): keeps the player off
                # its default internet time server, and page and origin share one clock.
                now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
                self._send(HTTPStatus.OK, b"" if head else now.encode(),
                           {"Content-Type": "text/plain", "Cache-Control": "no-store"}, length=len(now))
            elif path.startswith("/origin/"):
                self._origin(unquote(path[len("/origin/"):]), head)
            elif path.startswith("/vendor/"):
                self._vendor(unquote(path[len("/vendor/"):]), head)
            else:
                self._static(self.config.web_root, unquote(path.lstrip("/")), head, allow={".html", ".js", ".css"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the player aborted a request (ABR switch, seek): nothing to answer

    def _static(self, root: Path, rel: str, head: bool, allow: set[str] | None = None) -> None:
        base = root.resolve()
        target = (base / rel).resolve()
        if ".." in Path(rel).parts or not target.is_relative_to(base) or not target.is_file() or (
            allow is not None and target.suffix not in allow
        ):
            self._error(HTTPStatus.NOT_FOUND, f"no such file: /{rel}")
            return
        body = target.read_bytes()
        self._send(HTTPStatus.OK, b"" if head else body,
                   {"Content-Type": _media_type(str(target), WEB_TYPES), "Cache-Control": "no-cache"},
                   length=len(body))

    def _vendor(self, rel: str, head: bool) -> None:
        package = rel.split("/", 1)[0]
        if package not in VENDOR_PACKAGES:
            self._error(HTTPStatus.NOT_FOUND, f"not a served package: {package!r}")
            return
        self._static(self.config.web_root / "node_modules", rel, head, allow={".js", ".mjs", ".map", ".css"})

    def _origin(self, key: str, head: bool) -> None:
        started = time.monotonic()
        status: int = HTTPStatus.NOT_FOUND
        size, ctype, grant = 0, "application/json", ""
        try:
            status, size, ctype, grant = self._serve_origin(key, head)
        finally:
            log = self.config.realtime_log
            if log is not None:
                parts = urlsplit(self.path)
                log.write(method=self.command, host=self.headers.get("Host", ""), path=parts.path, query=parts.query,
                          status=int(status), size=size, seconds=time.monotonic() - started,
                          client_ip=self.client_address[0], user_agent=self.headers.get("User-Agent", ""),
                          content_type=ctype, headers=dict(self.headers.items()), grant=grant)

    def _serve_origin(self, key: str, head: bool) -> tuple[int, int, str, str]:
        """Like a CloudFront behaviour in front of S3: (optionally) check the signature, then serve.

        Returns (status, body bytes, content type, which carrier authorised it) for the log."""
        grant = ""
        keys = self.config.trusted_keys
        if keys is not None:
            url = f"http://{self.headers.get('Host', '')}{self.path}"
            verdict = keys.authorize(url, self._cookies(), client_ip=self.client_address[0])
            if not verdict.allowed:
                body = json.dumps({"error": "AccessDenied", "message": verdict.reason}).encode()
                # Never cacheable: the same URL may be fetched a moment later with the grant.
                self._send(HTTPStatus.FORBIDDEN, body, {"Content-Type": "application/json", "Cache-Control": "no-store",
                                                        "Access-Control-Allow-Origin": "*"})
                return HTTPStatus.FORBIDDEN, len(body), "application/json", verdict.carrier
            grant = verdict.carrier
        if not key or ".." in key.split("/"):
            self._error(HTTPStatus.NOT_FOUND, "no object key")
            return HTTPStatus.NOT_FOUND, 0, "application/json", grant
        try:
            body, headers = self.config.origin.get(key)
        except KeyError:
            self._error(HTTPStatus.NOT_FOUND, f"not published (yet): {key}")
            return HTTPStatus.NOT_FOUND, 0, "application/json", grant
        out = {"Content-Type": _media_type(key, MEDIA_TYPES), "Access-Control-Allow-Origin": "*"}
        for name in ("Content-Type", "Cache-Control", "ETag", "Last-Modified"):
            value = headers.get(name)
            # S3 defaults untyped uploads to binary/octet-stream; a player needs the real type.
            if value and not (name == "Content-Type" and value in ("binary/octet-stream", "application/octet-stream")):
                out[name] = value
        self._send(HTTPStatus.OK, b"" if head else body, out, length=len(body))
        return HTTPStatus.OK, len(body), out["Content-Type"], grant

    def _cookies(self) -> dict[str, str]:
        from http.cookies import CookieError, SimpleCookie

        jar: SimpleCookie = SimpleCookie()
        for header in self.headers.get_all("Cookie") or []:
            with contextlib.suppress(CookieError):
                jar.load(header)
        return {name: morsel.value for name, morsel in jar.items()}

    def _proxy_api(self) -> None:
        if not self.config.api_base:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "the control API is not running")
            return
        rest = self.path[len("/api"):]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {"Accept": self.headers.get("Accept", "application/json")}
        if self.headers.get("Content-Type"):
            headers["Content-Type"] = self.headers["Content-Type"]
        # The page never holds the key: the demo server adds the local stage's key.
        headers["x-api-key"] = self.headers.get("x-api-key") or self.config.api_key
        request = urllib.request.Request(self.config.api_base + rest, data=body, headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, data, answer = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, data, answer = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            self._error(HTTPStatus.BAD_GATEWAY, f"control API unreachable: {exc}")
            return
        # The API's signed cookies (GET /channels/{id}/playback) reach the browser on this origin,
        # which is also where /origin/* lives: the demo's stand-in for an API behind the CDN's domain.
        self._send(status, data, {"Content-Type": answer.get("Content-Type", "") or "application/json",
                                  "Cache-Control": "no-store"}, cookies=answer.get_all("Set-Cookie") or [])

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"Content-Type": "application/json", "Cache-Control": ERROR_CACHE_CONTROL,
                                  "Access-Control-Allow-Origin": "*"})

    def _send(self, status: int, body: bytes, headers: Mapping[str, str], length: int | None = None,
              cookies: Sequence[str] = ()) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body:
            self.wfile.write(body)


def make_server(config: ServerConfig, port: int = 0) -> ThreadingHTTPServer:
    """A threaded server on 127.0.0.1 (never a public interface); port 0 picks a free one."""
    handler = type("BoundDemoRequestHandler", (DemoRequestHandler,), {"config": config})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serving(config: ServerConfig, port: int = 0) -> Iterator[str]:
    """Run the demo server in a thread; yields its base URL."""
    server = make_server(config, port)
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- API client
def call_api(base: str, method: str, path: str, body: Any = None, api_key: str = LOCAL_API_KEY,
             timeout: float = 30) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"x-api-key": api_key, "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, children: Children | None = None,
               interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if children is not None:
            children.check()
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_channel(api: str, channel_id: str, children: Children | None = None, timeout: float = 90.0) -> str:
    """Start the channel once its lifecycle execution has parked it (CREATING -> IDLE); returns the state.

    A start sent while the channel is still CREATING is refused with 409 (no task token yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if children is not None:
            children.check()
        status, body = call_api(api, "GET", f"/channels/{channel_id}/status")
        state = body.get("state", "") if isinstance(body, dict) else ""
        if state in ("STARTING", "RUNNING"):
            return str(state)
        if state in ("IDLE", "STOPPED"):
            status, last = call_api(api, "POST", f"/channels/{channel_id}/start")
            if status < 300:
                return str(last.get("state", "STARTING")) if isinstance(last, dict) else "STARTING"
            if status != 409:
                raise DemoError(f"POST /channels/{channel_id}/start -> {status}: {last}")
        elif state == "ERROR" or (status >= 400 and status != 404):
            raise DemoError(f"channel {channel_id!r} cannot start: {status} {body}")
        else:
            last = body
        time.sleep(0.5)
    raise DemoError(f"channel {channel_id!r} did not become startable within {timeout:.0f} s (last: {last})")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- synthetic live source
# testsrc2 with the UTC wall clock burned in: compare it with a clock to see glass-to-glass latency.
# --------------------------------------------------------------------------- the stack
@dataclass
class DemoStack:
    url: str  # the one URL the human opens
    base_url: str  # demo server root
    api_url: str  # chalice local
    channel_id: str
    env: dict[str, str]
    children: Children
    closers: list[Callable[[], None]] = field(default_factory=list)
    realtime_log: Path | None = None  # the CDN-style request log (CMCD), input of `slipstream qoe`
    signed: bool = False  # /origin/* enforces the API's CloudFront signatures

    def player_url(self, fmt: str = "hls") -> str:
        return f"{self.base_url}/player.html?channel={self.channel_id}" + ("&format=dash" if fmt == "dash" else "")

    def stop(self) -> None:
        """Stop in reverse start order; every step runs even if an earlier one fails."""
        say("stopping")
        self.children.stop()
        while self.closers:
            closer = self.closers.pop()
            try:
                closer()
            except Exception as exc:  # keep going: leaving a child behind is worse than a noisy stop
                say(f"while stopping: {type(exc).__name__}: {exc}")


def _start_emulator(closers: list[Callable[[], None]], work_dir: Path) -> dict[str, str]:
    """Start devtools.localaws and deploy the app into it; returns the environment to run against it."""
    try:
        from devtools.localaws import LocalAWS
        from devtools.localaws.deploy import deploy
    except ImportError as exc:
        raise DemoError(f"the emulated AWS stack is not available ({exc}) -- run: make deps") from exc
    import tempfile

    say("starting the emulated AWS stack")
    # A fresh emulator per run (a channel left RUNNING by an earlier demo would confuse this one);
    # the previous run's state, with its Lambda logs, stays until the next run for debugging.
    work_dir.mkdir(parents=True, exist_ok=True)
    for old in work_dir.glob("localaws-*"):
        shutil.rmtree(old, ignore_errors=True)
    state_dir = Path(tempfile.mkdtemp(prefix="localaws-", dir=work_dir))
    aws = LocalAWS(state_dir=state_dir)
    aws.start()
    closers.append(aws.stop)
    env = {**os.environ, **aws.env()}
    saved = dict(os.environ)
    os.environ.update(aws.env())  # deploy() uses boto3, which reads the emulator endpoint from here
    try:
        say("deploying the functions, queues, buckets and state machine")
        deployment = deploy(ROOT, stage="local")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    env.update(deployment.env())
    return env


def signing_key_pair() -> tuple[str, str]:
    """A fresh RSA-2048 key (what CloudFront accepts): (private PEM for the API, public PEM for the edge)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def start_demo(channel_id: str = DEMO_CHANNEL, port: int = 0, push: bool = True,
               work_dir: Path | None = None, startup_timeout: float = 180.0, signed: bool = False,
               create: dict[str, Any] | None = None) -> DemoStack:
    """Bring the whole demo up; on any failure everything already started is stopped again.

    work_dir (default .demo/) holds the children's logs and the emulator's state; tests pass their
    own so they never touch a `make demo` running beside them. signed: the API hands out CloudFront
    grants and the origin refuses requests without one (as a stage with SignedPlayback=enabled).
    create: more fields of the channel's POST /channels body (ladder, slate_wait, ...)."""
    work_dir = work_dir or ROOT / ".demo"
    children = Children(log_dir=work_dir / "logs")
    closers: list[Callable[[], None]] = []
    stack: DemoStack | None = None
    try:
        env = _start_emulator(closers, work_dir)
        api_port = free_port()
        api = f"http://127.0.0.1:{api_port}"

        import boto3

        s3 = boto3.client("s3", endpoint_url=env.get("AWS_ENDPOINT_URL"), region_name=env.get("AWS_DEFAULT_REGION"),
                          aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"))
        trusted = None
        if signed:
            private, public = signing_key_pair()
            ssm = boto3.client("ssm", endpoint_url=env.get("AWS_ENDPOINT_URL"),
                               region_name=env.get("AWS_DEFAULT_REGION"),
                               aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                               aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"))
            ssm.put_parameter(Name=SIGNING_KEY_PARAMETER, Value=private, Type="SecureString", Overwrite=True)
            env = {**env, "CLOUDFRONT_KEY_PAIR_ID": SIGNING_KEY_PAIR_ID,
                   "CLOUDFRONT_PRIVATE_KEY_PARAMETER": SIGNING_KEY_PARAMETER}
            trusted = TrustedKeys({SIGNING_KEY_PAIR_ID: public})
        log_path = work_dir / "logs" / "cdn-realtime.jsonl"
        log_path.unlink(missing_ok=True)  # one run's viewers per file: `slipstream qoe` reads them all
        config = ServerConfig(web_root=WEB, origin=S3ObjectSource(s3, env["ORIGIN_BUCKET"]), api_base=api,
                              trusted_keys=trusted, realtime_log=RealtimeLog(log_path))
        server = make_server(config, port)
        thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
        thread.start()

        def close_server() -> None:
            server.shutdown()
            server.server_close()

        closers.append(close_server)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        # Playback URLs the API hands out point at this server's origin, like a CDN domain would.
        env = {**env, "PLAYBACK_BASE_URL": f"{base}/origin"}

        say(f"serving the control API with chalice local on 127.0.0.1:{api_port}")
        chalice = ROOT / ".venv" / "bin" / "chalice"
        children.start("chalice-local", [str(chalice) if chalice.exists() else "chalice", "local", "--stage", "local",
                                         "--host", "127.0.0.1", "--port", str(api_port), "--no-autoreload"], env)
        wait_until("chalice local", lambda: _port_open(api_port), 60, children)

        say(f"creating and starting channel {channel_id!r}")
        status, body = call_api(api, "POST", "/channels",
                                {"id": channel_id, "name": "Slipstream demo", **(create or {})})
        if status == 409:
            say(f"channel {channel_id!r} exists already; reusing it")
        elif status >= 300:
            raise DemoError(f"POST /channels -> {status}: {body}")
        start_channel(api, channel_id, children)

        stack = DemoStack(url="", base_url=base, api_url=api, channel_id=channel_id, env=env,
                          children=children, closers=closers, realtime_log=log_path, signed=signed)
        stack.url = stack.player_url()
        if push:
            start_push(stack)
            say("waiting for the first published playlist")
            wait_until("the master playlist in the origin bucket",
                       lambda: bool(s3.head_object(Bucket=env["ORIGIN_BUCKET"], Key=f"{channel_id}/master.m3u8")),
                       startup_timeout, children, interval=1.0)
        return stack
    except BaseException:
        if stack is not None:
            stack.stop()
        else:
            children.stop()
            for closer in reversed(closers):
                with contextlib.suppress(Exception):
                    closer()
        raise


def start_push(stack: DemoStack) -> None:
    """Push the live synthetic source with the project's own encoder helper (`slipstream push`)."""
    say("pushing a live testsrc2 source with a burned-in clock (slipstream_cli push)")
    stack.children.start("push", [str(VENV_PY), "-m", "slipstream_cli", "push", "--channel", stack.channel_id,
                                  "--bucket", stack.env["INGEST_BUCKET"], "testsrc", "--realtime"], stack.env)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop by itself after this many seconds (0: run until Ctrl-C)")
    parser.add_argument("--no-push", action="store_true", help="do not push the synthetic source")
    parser.add_argument("--channel", default=DEMO_CHANNEL, help="channel id to create (default: demo)")
    parser.add_argument("--port", type=int, default=0, help="port of the page (default: a free one)")
    parser.add_argument("--signed", action="store_true",
                        help="signed playback: the origin answers 403 without the API's CloudFront grant")
    args = parser.parse_args(argv)

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    stack: DemoStack | None = None
    try:
        check_prerequisites()
        from chalicelib.records import validate_id

        validate_id(args.channel)
        stack = start_demo(channel_id=args.channel, port=args.port, push=not args.no_push, signed=args.signed)
        if stack.realtime_log is not None:
            say(f"CDN request log with CMCD: {stack.realtime_log} (slipstream qoe {stack.channel_id})")
        say("ready -- open this URL (Ctrl-C stops everything):")
        print(stack.url, flush=True)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while deadline is None or time.monotonic() < deadline:
            stack.children.check()
            time.sleep(0.5)
        return 0
    except _Stop:
        return 0
    except DemoError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from chalicelib.errors import SlipstreamError

        if isinstance(exc, SlipstreamError):
            print(f"demo: error: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        # Ignore further Ctrl-C while stopping, so an impatient second press cannot orphan children.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            if stack is not None:
                stack.stop()
            say("stopped")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
