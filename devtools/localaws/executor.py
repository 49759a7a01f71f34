"""Runs Python Lambda functions for real, each invocation in its own subprocess (no Docker).

Why a subprocess per invocation: the handler gets a clean interpreter (module globals, env vars and
cached boto3 clients never leak between functions), a timeout can kill it and everything it spawned
(ffmpeg) by process group, and a crash cannot take the emulator down.

Why a worker pool: asynchronous sources (S3 notifications, SQS mappings, EventBridge, Invoke with
InvocationType=Event) must not block the API call that triggered them, and several chunks should
transcode in parallel, bounded so a burst cannot fork-bomb a 2-core laptop.

Which invocation gets a free worker: the one whose event is oldest, whatever its source. Lambda has no
such cap (each function scales on its own), so the cap must not reorder work: a FIFO of async jobs that
SQS mappings could only use once it was empty made every SQS-triggered invocation wait behind every
newer S3 notification (a pipeline's second stage behind its first stage's new arrivals). Async jobs
(S3, EventBridge, Invoke Event) wait in a heap by the time their event was raised; SQS mappings are
*sources* the workers ask, when they look for work, since when the oldest message they could receive now
has been receivable (SentTimestamp, or the end of its delay or visibility timeout), so a message stays
in its queue (visible, its visibility timeout not started) until a worker is free to run it, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import io
import itertools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("localaws.executor")

RUNNER = Path(__file__).with_name("_runner.py")
# The managed runtime's PATH plus /usr/bin, where a local ffmpeg lives when no layer ships one.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


class Source(Protocol):
    """Something the workers take deliveries from when they are free (an SQS event source mapping)."""

    def oldest(self) -> float | None:
        """Epoch seconds at which the oldest delivery it could start now was raised; None if none."""

    def take(self) -> tuple[Callable[[], Any], float] | None:
        """Claim a delivery (e.g. receive a batch): the job that runs it and when its oldest event was
        raised; None if nothing came (the source then reports nothing until it is woken again)."""


@dataclass(order=True)
class _Queued:
    event_time: float
    seq: int
    job: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)
    submitted: float = field(compare=False, default=0.0)
    label: str = field(compare=False, default="async")


@dataclass(frozen=True)
class FunctionSpec:
    """What the executor needs to know about a function (taken from moto's LambdaFunction)."""

    name: str
    arn: str
    handler: str
    code: bytes
    timeout: float = 3.0
    memory_mb: int = 128
    env: dict[str, str] = field(default_factory=dict)
    layers: tuple[bytes, ...] = ()
    version: str = "$LATEST"
    region: str = "us-east-1"


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation, in the shape Lambda's Invoke API reports it."""

    request_id: str
    payload: str  # JSON text: the handler's result, or {"errorMessage", "errorType", ...}
    error: str | None  # None on success; "Unhandled" like Lambda's X-Amz-Function-Error
    log_path: Path
    log_text: str
    duration_ms: float

    @property
    def errored(self) -> bool:
        return self.error is not None


_DIGESTS: dict[int, tuple[bytes, str]] = {}
_DIGESTS_LOCK = threading.Lock()


def _digest(data: bytes) -> str:
    """sha256 of code/layer bytes, memoised per bytes object: moto hands us the same object on every
    invocation, and hashing a 70 MB ffmpeg layer each time would cost ~0.2 s per call."""
    with _DIGESTS_LOCK:
        hit = _DIGESTS.get(id(data))
        if hit is not None and hit[0] is data:
            return hit[1]
    digest = hashlib.sha256(data).hexdigest()[:20]
    with _DIGESTS_LOCK:
        if len(_DIGESTS) > 64:
            _DIGESTS.clear()
        _DIGESTS[id(data)] = (data, digest)
    return digest


def tmp_root(base: Path = Path("/dev/shm")) -> Path:
    """This emulator's parent of the sandboxes' private temp dirs: on tmpfs (/dev/shm) when there is one,
    as Lambda's /tmp is scratch space that never outlives its execution environment. Dirs left by
    emulators that died without cleaning up (their pid is gone) are removed on the way."""
    if not (base.is_dir() and os.access(base, os.W_OK)):
        base = Path(tempfile.gettempdir())
    for old in base.glob("localaws-tmp-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    mine = base / f"localaws-tmp-{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


def default_cache_dir() -> Path:
    """Unpacked code and layers are content-addressed, so every emulator on the machine can share them
    (a fresh test session would otherwise unzip the 170 MB ffmpeg layer again)."""
    return Path(os.environ.get("LOCALAWS_CACHE_DIR") or Path(tempfile.gettempdir()) / "localaws-cache")


def _unpack(data: bytes, root: Path) -> Path:
    """Unzip once per content hash: warm invocations reuse the tree, redeploys get a fresh one."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / _digest(data)
    if not target.is_dir():
        tmp = root / f".{target.name}.{uuid.uuid4().hex}"
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(tmp)
            # zip keeps unix permissions in external_attr; extractall drops them, and layer binaries
            # (ffmpeg) must stay executable.
            for info in zf.infolist():
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(tmp / info.filename, mode)
        try:
            os.replace(tmp, target)
        except OSError:  # another worker unpacked the same bytes first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class Executor:
    """Synchronous and asynchronous invocation of FunctionSpecs.

    `endpoint` is the emulator's own URL: functions talk back to it through AWS_ENDPOINT_URL.
    """

    def __init__(
        self,
        state_dir: Path,
        endpoint: str,
        *,
        workers: int = 4,
        async_retry_delays: tuple[float, ...] = (1.0, 2.0),
        on_logs: Callable[[FunctionSpec, Invocation], None] | None = None,
        cache_dir: Path | None = None,
        warm: bool = True,
        max_idle: int = 8,
        idle_ttl: float = 300.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.cache_dir = cache_dir or default_cache_dir()
        self.endpoint = endpoint
        self.workers = workers
        # AWS retries a failed async invocation twice, 1 and 2 minutes apart; locally the same count
        # with second-scale delays keeps tests and demos quick.
        self.async_retry_delays = async_retry_delays
        self.on_logs = on_logs
        # warm=True reuses a sandbox between invocations of the same function version, like Lambda;
        # at most max_idle idle sandboxes (~60-100 MB each) are kept, none longer than idle_ttl seconds.
        self.warm = warm
        self.max_idle = max_idle
        self.idle_ttl = idle_ttl
        self._running: dict[int, _Sandbox] = {}
        self._idle: dict[str, list[_Sandbox]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # per function: [invocations, errors, cold starts, seconds] (GET /_localaws/stats)
        self._counts: dict[str, list[float]] = {}
        # per source label ("async", "sqs"): [jobs, seconds queued, max seconds queued]
        self._waits: dict[str, list[float]] = {}
        for sub in ("logs", "run"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._tmp = tmp_root(Path(os.environ.get("LOCALAWS_SANDBOX_TMP") or "/dev/shm"))
        # LOCALAWS_TRACE=path: one JSON line per background job (what, when raised, started, ended).
        self._trace_path = os.environ.get("LOCALAWS_TRACE") or ""
        self._trace_lock = threading.Lock()
        self._tls = threading.local()
        # The scheduler: async jobs in a heap by event time, sources asked when a worker looks for work.
        self._sched = threading.Condition()
        self._queue: list[_Queued] = []
        self._order = itertools.count()
        self._sources: list[Source] = []
        self._busy = 0  # workers running a job (under _sched)
        self._threads = [threading.Thread(target=self._work, name=f"lambda-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- scheduling: a free worker takes the oldest event, from the heap or from a source ----------
    @property
    def idle_workers(self) -> int:
        with self._sched:
            return self.workers - self._busy

    def add_source(self, source: Source) -> None:
        with self._sched:
            self._sources.append(source)
            self._sched.notify()

    def wake(self) -> None:
        """A source may have something to deliver now (a message added, made visible, a mapping changed)."""
        with self._sched:
            self._sched.notify()

    def submit(self, job: Callable[[], Any], event_time: float | None = None, label: str = "async") -> Future[Any]:
        """Run `job` on a worker, after every queued job or source delivery whose event is older."""
        future: Future[Any] = Future()
        now = time.time()
        with self._sched:
            if self._closed.is_set():
                future.cancel()
                return future
            heapq.heappush(self._queue, _Queued(now if event_time is None else event_time, next(self._order),
                                                job, future, now, label))
            self._sched.notify()
        return future

    def _pick(self) -> _Queued | Source | None:
        """Under _sched: the oldest of the heap's head and what each source could deliver now."""
        best: _Queued | Source | None = self._queue[0] if self._queue else None
        best_time = self._queue[0].event_time if self._queue else float("inf")
        for source in self._sources:
            t = source.oldest()
            if t is not None and t < best_time:
                best, best_time = source, t
        if isinstance(best, _Queued):
            heapq.heappop(self._queue)
        return best

    def _work(self) -> None:
        while True:
            with self._sched:
                picked = None
                while picked is None:
                    if self._closed.is_set():
                        return
                    try:
                        picked = self._pick()
                    except Exception:  # moto's queues changing under a look: a worker must never die of it
                        log.exception("scheduler: looking for the oldest event failed; looking again shortly")
                        self._sched.wait(0.5)
                        continue
                    if picked is None:
                        self._sched.wait()
                self._busy += 1
                self._sched.notify()  # there may be more: let another idle worker look
            try:
                if isinstance(picked, _Queued):
                    if picked.future.set_running_or_notify_cancel():
                        self._run(picked.job, picked.future, picked.label, picked.event_time, picked.submitted)
                else:
                    try:
                        taken = picked.take()
                    except Exception:  # a queue deleted under the receive: its message (if any) stays queued
                        log.exception("scheduler: receiving an SQS message failed")
                        taken = None
                    if taken is not None:
                        self._run(taken[0], Future(), "sqs", taken[1], taken[1])
            finally:
                with self._sched:
                    self._busy -= 1

    def _run(self, job: Callable[[], Any], future: Future[Any], label: str, event_time: float,
             submitted: float) -> None:
        started = time.time()
        with self._lock:
            w = self._waits.setdefault(label, [0, 0.0, 0.0])
            w[0] += 1
            w[1] += started - submitted
            w[2] = max(w[2], started - submitted)
        rec: dict[str, Any] = {"src": label, "event": event_time, "sub": submitted, "start": started}
        self._tls.rec = rec
        try:
            future.set_result(job())
        except Exception as e:
            log.exception("background Lambda job failed")
            future.set_exception(e)
        finally:
            self._tls.rec = None
            if self._trace_path:
                rec["end"] = time.time()
                with self._trace_lock, open(self._trace_path, "a") as f:
                    f.write(json.dumps(rec, default=str) + "\n")

    def invoke_async(
        self,
        spec_of: Callable[[], FunctionSpec],
        event: Any,
        *,
        max_retries: int = 2,
        on_failure: Callable[[Invocation], None] | None = None,
    ) -> Future[Any]:
        """Event invocation: returns at once; runs, retries on error, then calls `on_failure`.

        `spec_of` is re-read on every attempt, so a redeploy between retries runs the new code, as in AWS.
        """

        def attempt_all() -> Invocation:
            inv = self.invoke(spec_of(), event)
            for delay in self.async_retry_delays[:max_retries]:
                if not inv.errored or self._closed.wait(delay):
                    break
                inv = self.invoke(spec_of(), event)
            if inv.errored and on_failure is not None:
                on_failure(inv)
            return inv

        return self.submit(attempt_all)

    # -- one invocation ---------------------------------------------------------------------------
    def invoke(self, fn: FunctionSpec, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        rec = getattr(self._tls, "rec", None)
        if rec is not None and self._trace_path:
            rec.setdefault("fn", fn.name)
            rec.setdefault("what", _what(event))
        task_root = _unpack(fn.code, self.cache_dir / "code")
        layer_roots = [_unpack(layer, self.cache_dir / "layers") for layer in fn.layers]
        started = time.time()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        log_dir = self.state_dir / "logs" / fn.name
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{stamp}-{request_id}.log"
        env = self._env(fn, task_root, layer_roots)
        sandbox = self._acquire(fn, task_root, env)
        spec = {
            "task_root": str(task_root),
            "handler": fn.handler,
            "event": event,
            "function_name": fn.name,
            "function_version": fn.version,
            "invoked_function_arn": fn.arn,
            "memory_limit_in_mb": fn.memory_mb,
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{fn.name}",
            "log_stream_name": env["AWS_LAMBDA_LOG_STREAM_NAME"],
            "deadline": started + fn.timeout,
        }
        with open(log_path, "ab") as logf:
            logf.write(f"START RequestId: {request_id} Version: {fn.version}\n".encode())
        outcome, result = sandbox.run(spec, log_path, timeout=fn.timeout)
        duration_ms = (time.time() - started) * 1000
        error: str | None
        notes = ""
        if outcome == "timeout":
            error = "Unhandled"
            message = (f"{datetime.now(UTC).isoformat()} {request_id} "
                       f"Task timed out after {fn.timeout:.2f} seconds")
            payload = json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"})
            notes = f"\n{message}\n"
        elif outcome == "ok" and result is not None:
            payload = json.dumps(result["payload"])
            error = None if result["ok"] else "Unhandled"
        else:  # the interpreter died before reporting: sys.exit, os._exit, segfault, OOM kill
            error = "Unhandled"
            payload = json.dumps(
                {
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                    f"error: exit status {sandbox.returncode}",
                    "errorType": "Runtime.ExitError",
                }
            )
        self._release(sandbox)
        with self._lock:
            c = self._counts.setdefault(fn.name, [0, 0, 0, 0.0])
            c[0] += 1
            c[1] += error is not None
            c[2] += sandbox.uses == 1
            c[3] += duration_ms / 1000
        with open(log_path, "ab") as logf:
            logf.write(
                f"{notes}END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: "
                f"{duration_ms:.2f} ms\tMemory Size: {fn.memory_mb} MB\tInit: "
                f"{'warm' if sandbox.uses > 1 else 'cold'}\n".encode()
            )
        inv = Invocation(
            request_id=request_id,
            payload=payload,
            error=error,
            log_path=log_path,
            log_text=log_path.read_text(encoding="utf-8", errors="replace"),
            duration_ms=duration_ms,
        )
        if self.on_logs is not None:
            try:
                self.on_logs(fn, inv)
            except Exception:  # CloudWatch copy is best effort; the log file is the record
                log.exception("could not copy logs of %s to CloudWatch", fn.name)
        return inv

    # -- sandboxes: Lambda reuses an execution environment between invocations ("warm start") -------
    def _acquire(self, fn: FunctionSpec, task_root: Path, env: dict[str, str]) -> _Sandbox:
        # New code, layers or configuration give a new key, so a redeploy never runs in an old sandbox.
        key = hashlib.sha256(json.dumps([fn.arn, str(task_root), env], sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        stale: list[_Sandbox] = []
        with self._lock:
            idle = self._idle.setdefault(key, [])
            sandbox = None
            while idle:
                candidate = idle.pop()
                if candidate.alive and now - candidate.last_used < self.idle_ttl:
                    sandbox = candidate
                    break
                stale.append(candidate)
        for old in stale:
            old.kill()
        if sandbox is None:
            sandbox = _Sandbox(key, task_root, env, self.state_dir / "run", fn.name, self._tmp)
        with self._lock:
            self._running[sandbox.pid] = sandbox
        return sandbox

    def _release(self, sandbox: _Sandbox) -> None:
        evicted: list[_Sandbox] = []
        with self._lock:
            self._running.pop(sandbox.pid, None)
            if self.warm and sandbox.alive and not self._closed.is_set():
                self._idle.setdefault(sandbox.key, []).append(sandbox)
                everyone = sorted((sb for lst in self._idle.values() for sb in lst), key=lambda sb: sb.last_used)
                for old in everyone[: max(0, len(everyone) - self.max_idle)]:
                    self._idle[old.key].remove(old)
                    evicted.append(old)
            else:
                evicted.append(sandbox)
        for old in evicted:
            old.kill()

    def _env(self, fn: FunctionSpec, task_root: Path, layers: list[Path]) -> dict[str, str]:
        # A clean environment like the managed runtime's: nothing from the emulator's own process
        # (or the test process that started it) leaks into a function.
        layer_bins = [str(p / "bin") for p in layers if (p / "bin").is_dir()]
        layer_py = [str(p / "python") for p in layers if (p / "python").is_dir()]
        layer_lib = [str(p / "lib") for p in layers if (p / "lib").is_dir()]
        env = {
            "PATH": os.pathsep.join([*layer_bins, BASE_PATH]),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "HOME": str(self.state_dir / "run"),
            "PYTHONPATH": os.pathsep.join([str(task_root), *layer_py]),
            # Compiled bytecode goes to a mirror tree in the shared cache, never into the task root
            # (which stays byte-identical to the deployed zip, like Lambda's read-only /var/task):
            # without it every cold start compiled the whole app again (~0.3 CPU-s of ~0.8).
            "PYTHONPYCACHEPREFIX": str(self.cache_dir / "pycache"),
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": str(RUNNER.parent),
            "_HANDLER": fn.handler,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(fn.timeout)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            # One stream per sandbox, as in Lambda (a stable value keeps the sandbox key stable).
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[{fn.version}]"
            f"{hashlib.sha256(str(task_root).encode()).hexdigest()[:32]}",
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            # Each function signs with its own key id (Lambda: its role's credentials), so the
            # emulator's request count (GET /_localaws/stats) tells the functions apart.
            "AWS_ACCESS_KEY_ID": fn.name,
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": self.endpoint,
            # No X-Ray daemon locally; Powertools Tracer would otherwise log a warning per segment.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        if layer_lib:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(layer_lib)
        env.update({k: str(v) for k, v in fn.env.items()})
        return env

    def stats(self) -> dict[str, Any]:
        """Invocations per function and the live sandboxes' pids (a bench reads their CPU in /proc)."""
        with self._lock:
            counts = {name: {"invocations": int(c[0]), "errors": int(c[1]), "cold_starts": int(c[2]),
                             "seconds": round(c[3], 3)} for name, c in sorted(self._counts.items())}
            boxes = [*self._running.values(), *(sb for lst in self._idle.values() for sb in lst)]
            waits = {label: {"jobs": int(w[0]), "queued_seconds": round(w[1], 3), "max_queued_seconds": round(w[2], 3)}
                     for label, w in sorted(self._waits.items())}
        return {"invocations": counts, "queued": waits,
                "sandboxes": [{"pid": sb.pid, "function": sb.function} for sb in boxes]}

    def shutdown(self) -> None:
        """Kill running invocations (and their children) and idle sandboxes, drop queued ones."""
        self._closed.set()
        with self._sched:
            dropped, self._queue = self._queue, []
            self._sched.notify_all()
        for queued in dropped:
            queued.future.cancel()
        with self._lock:
            everyone = [*self._running.values(), *(sb for lst in self._idle.values() for sb in lst)]
            self._idle.clear()
        for sandbox in everyone:
            sandbox.kill()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _what(event: Any) -> list[Any]:
    """For the trace: the S3 keys, or the SQS bodies (first 200 characters) and SentTimestamps, of an event."""
    out: list[Any] = []
    records = event.get("Records") if isinstance(event, dict) else None
    for r in records or ():
        if not isinstance(r, dict):
            continue
        if "s3" in r:
            out.append(str(r["s3"].get("object", {}).get("key", "")))
        elif "body" in r:
            out.append(str(r["body"])[:200])
            out.append(int((r.get("attributes") or {}).get("SentTimestamp") or 0) / 1000)
    return out


class _Sandbox:
    """One warm interpreter (`_runner.py --serve`) for one function version and configuration.

    Own process group, so a timeout kills the handler and whatever it spawned (ffmpeg); after a
    timeout or crash the sandbox is discarded and the next invocation starts cold, as in Lambda.
    """

    def __init__(self, key: str, task_root: Path, env: dict[str, str], run_dir: Path, function: str = "",
                 tmp_parent: Path | None = None, *, python: str = sys.executable) -> None:
        self.key = key
        self.function = function
        self.uses = 0
        self.last_used = time.monotonic()
        # Its own TMPDIR, removed with it: like Lambda's /tmp, kept across warm invocations of this
        # sandbox and shared with no other. On tmpfs, ffmpeg's scratch files never reach the disk.
        if tmp_parent is not None:
            tmp_parent.mkdir(parents=True, exist_ok=True)  # (a late start during shutdown; swept later)
        self.tmp = Path(tempfile.mkdtemp(prefix="sandbox-", dir=tmp_parent))
        env = {**env, "TMPDIR": str(self.tmp)}
        request_r, self._request_w = os.pipe()
        self._done_r, done_w = os.pipe()
        boot_log = open(run_dir / "sandbox-boot.log", "ab")  # noqa: SIM115 -- only until the first request
        try:
            self.proc = subprocess.Popen(
                [python, str(RUNNER), "--serve", str(task_root), str(request_r), str(done_w)],
                stdin=subprocess.DEVNULL,  # ffmpeg & co. read stdin; it must never be our pipe
                stdout=boot_log,
                stderr=subprocess.STDOUT,
                cwd=task_root,
                env=env,
                pass_fds=(request_r, done_w),
                start_new_session=True,
            )
        finally:
            boot_log.close()
            os.close(request_r)
            os.close(done_w)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def run(self, spec: dict[str, Any], log_path: Path, timeout: float) -> tuple[str, dict[str, Any] | None]:
        """("ok", result), ("timeout", None) (sandbox killed) or ("died", None) (the interpreter exited
        mid-invocation). The result is one JSON line on the done pipe."""
        self.uses += 1
        request = json.dumps({"spec": spec, "log": str(log_path)}) + "\n"
        try:
            data = memoryview(request.encode())
            while data:  # a big event can exceed the pipe's buffer; the sandbox reads as we write
                data = data[os.write(self._request_w, data):]
        except OSError:  # BrokenPipe: it died while idle
            self.kill()
            return "died", None
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        while True:
            ready, _, _ = select.select([self._done_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.kill()
                return "timeout", None
            chunk = os.read(self._done_r, 1 << 20)
            if not chunk:  # EOF: exited before answering
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
                self.kill()
                return "died", None
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
        self.last_used = time.monotonic()
        return "ok", json.loads(b"".join(chunks))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for fd in (self._request_w, self._done_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._request_w = self._done_r = -1
        shutil.rmtree(self.tmp, ignore_errors=True)
