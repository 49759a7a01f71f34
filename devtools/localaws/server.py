"""LocalAWS: moto in server mode, in a child process, with Lambdas that really run.

The server lives in a child process so the moto patches (patches.py) never touch the caller's own
moto (functional tests use `mock_aws` in-process), and so stopping it is one signal. It binds loopback
only: it executes whatever code is deployed to it, unauthenticated.

    with LocalAWS(state_dir=".localaws") as aws:
        os.environ.update(aws.env())
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

REGION = "us-east-1"
READY = "LOCALAWS READY "
REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_NAMES = {"localhost": "127.0.0.1"}


def loopback_host(host: str) -> str:
    """The address to bind for `host`, or ValueError if it is not loopback."""
    name = host.strip().strip("[]")
    if name in LOOPBACK_NAMES:
        return LOOPBACK_NAMES[name]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"LocalAWS refuses to bind {host!r}: it runs deployed code for any caller without "
            "authentication, so it binds only a loopback address (127.0.0.1, localhost or ::1)"
        )
    return str(address)


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class LoopbackServer:
    """A server in a child process of ours, bound to a loopback address (LocalAWS, LocalStack):
    its endpoint, what boto3 needs to reach it, and a stop() that leaves no process behind."""

    name = "server"
    stop_timeout = 10.0

    def __init__(self, host: str, port: int) -> None:
        self.bind = loopback_host(host)  # fail before anything starts
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is outside 0-65535 (0 picks a free port)")
        self.requested_port = port
        self.port = 0
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[Any] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError(f"{self.name} is not running: call start() first")
        return f"http://{url_host(self.bind)}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server and every process it started (running Lambdas, their ffmpeg)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_tree(proc, self.stop_timeout if timeout is None else timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalAWS(LoopbackServer):
    """Start/stop the emulator; `env()` is what boto3 (and the AWS CLI) need to talk to it."""

    name = "LocalAWS"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike[str] = ".localaws",
        *,
        workers: int = 4,
        async_retry_delays: tuple[float, ...] = (1.0, 2.0),
        startup_timeout: float = 30.0,
        warm: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.state_dir = Path(state_dir).resolve()
        self.workers = workers
        self.async_retry_delays = async_retry_delays
        self.startup_timeout = startup_timeout
        self.warm = warm  # reuse a Lambda sandbox between invocations (False: a process per invocation)

    @property
    def server_log(self) -> Path:
        return self.state_dir / "server.log"

    def log_files(self, function_name: str) -> list[Path]:
        """Invocation logs of one function, oldest first."""
        return sorted((self.state_dir / "logs" / function_name).glob("*.log"))

    def start(self) -> Self:
        if self.running:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self._log = open(self.server_log, "ab")  # noqa: SIM115 -- lives as long as the server
        # The server must never talk to another emulator (AWS_ENDPOINT_URL_<SERVICE> included).
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = [
            sys.executable, "-m", "devtools.localaws", "serve",
            "--host", self.bind, "--port", str(self.requested_port),
            "--state-dir", str(self.state_dir), "--workers", str(self.workers),
            "--async-retry-delays", ",".join(str(d) for d in self.async_retry_delays),
            *([] if self.warm else ["--cold"]),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,  # Ctrl-C in a test run reaches us, not the server; stop() ends it
        )
        try:
            self.port = self._await_ready(self._proc, t0 + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - t0
        return self

    def _await_ready(self, proc: subprocess.Popen[str], deadline: float) -> int:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while (left := deadline - time.perf_counter()) > 0:
                if not sel.select(timeout=left):
                    continue
                line = proc.stdout.readline()
                if line.startswith(READY):
                    return int(line[len(READY) :].strip().rsplit(":", 1)[1])
                if not line and proc.poll() is not None:
                    raise RuntimeError(
                        f"LocalAWS exited with code {proc.returncode} before it was ready; "
                        f"see {self.server_log}:\n{self._log_tail()}"
                    )
        finally:
            sel.close()
        raise TimeoutError(f"LocalAWS not ready after {self.startup_timeout:.0f} s; see {self.server_log}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.server_log.read_text(errors="replace")[-2000:]
        return ""


def stop_tree(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM proc, SIGKILL its group if it is still there after `timeout` s, then SIGKILL every
    descendant it had: Lambda sandboxes run in sessions of their own (so a timeout can kill their
    group, ffmpeg included); the server kills them on SIGTERM, and this sweep catches any it could not."""
    leftovers = descendants(proc.pid)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """All live descendants of pid (Linux /proc), including those that started their own session."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def serve(
    host: str,
    port: int,
    state_dir: Path,
    *,
    workers: int = 4,
    async_retry_delays: tuple[float, ...] = (1.0, 2.0),
    warm: bool = True,
) -> None:
    """Run the emulator in this process until SIGTERM/SIGINT (the child side of LocalAWS)."""
    bind = loopback_host(host)
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.serving import make_server

    from .executor import Executor
    from .patches import Emulator
    from .stats import Accounting, RequestStats
    from .wsgi import KeepAliveHandler, dispatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the Lambda logs
    stats = RequestStats()
    emulators: list[Emulator] = []  # set below: the executor needs the port the server picked
    app = Accounting(dispatcher(create_backend_app), stats, extra=lambda: {
        "pid": os.getpid(), **emulators[0].executor.stats(), "sqs_polls": emulators[0].poller.polls})
    server = make_server(bind, port, app, threaded=True, request_handler=KeepAliveHandler)
    port = server.server_port
    endpoint = f"http://{url_host(bind)}:{port}"
    # moto's Step Functions interpreter reaches Lambda and the other services over HTTP on this port.
    os.environ["MOTO_PORT"] = str(port)
    emulator = Emulator(
        Executor(state_dir, endpoint, workers=workers, async_retry_delays=async_retry_delays, warm=warm), stats
    )
    emulators.append(emulator)
    emulator.install()

    def on_signal(signum: int, frame: object) -> None:
        # shutdown() blocks until serve_forever returns, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"{READY}{endpoint}", flush=True)
    print(f"export AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={REGION} "
          "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        emulator.shutdown()
        server.server_close()
