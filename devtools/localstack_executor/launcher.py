"""Start and stop LocalStack on this host (no Docker), with Lambdas run by the slipstream executor.

Runs in the project's venv and imports nothing from LocalStack: LocalStack lives in its own Python
3.13 venv (`make localstack-venv`, default `.venv-localstack`), started as a child process bound to
127.0.0.1 on a free port, with its filesystem, temp files and log under one state directory.

LocalStack community cannot serve two services Slipstream needs on a machine without network:
DynamoDB (it downloads a JDK and DynamoDB Local at first use) and CloudFront (not in community).
`LocalStackSession` therefore also starts the built-in emulator for just those two and points boto3
at it with the per-service variables boto3 honours (AWS_ENDPOINT_URL_DYNAMODB, _CLOUDFRONT).

    with LocalStackSession(state_dir) as stack:
        os.environ.update(stack.env())
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from devtools.localaws.deploy import endpoint_variable
from devtools.localaws.server import LocalAWS, LoopbackServer, url_host

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSION = "2026.3.0"
# What Slipstream uses from LocalStack; anything else stays unloaded. The last four are for
# `make deploy STAGE=lsdeploy` (the stack, Chalice's REST API, the stage's alarms and dashboard).
SERVICES = ("s3", "sqs", "lambda", "stepfunctions", "events", "logs", "iam", "sts",
            "cloudformation", "apigateway", "sns", "cloudwatch")
# Served by the built-in emulator instead (see the module docstring).
BUILT_IN_SERVICES = ("dynamodb", "cloudfront")
HEALTHY = ("available", "running")
# The entry points devtools/localstack_executor/pyproject.toml installs.
PLUGINS = ("localstack.lambda.runtime_executor:slipstream", "localstack.runtime.server:twisted-loopback")


class LocalStackError(Exception):
    """LocalStack could not be started; the message says why."""


class LocalStackUnavailableError(LocalStackError):
    """LocalStack cannot run here as installed (no Python 3.13, no venv); the message says how to fix it."""


class LocalStackStartError(LocalStackError):
    """LocalStack exited or did not become healthy in time; the message carries its last log lines."""


def python313() -> str | None:
    """The interpreter LocalStack 2026.3 needs: LOCALSTACK_PYTHON, pyenv's 3.13.0, or python3.13 on PATH
    (the Makefile's LOCALSTACK_PY), if it runs: a pyenv shim for a version not selected does not."""
    candidates = [os.environ.get("LOCALSTACK_PYTHON", ""),
                  str(Path.home() / ".pyenv" / "versions" / "3.13.0" / "bin" / "python"),
                  shutil.which("python3.13") or ""]  # fmt: skip
    for candidate in filter(None, candidates):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            check = [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"]
            if subprocess.run(check, capture_output=True, timeout=20, check=False).returncode == 0:
                return candidate
    return None


def default_venv() -> Path:
    return Path(os.environ.get("LOCALSTACK_VENV") or REPO_ROOT / ".venv-localstack")


def venv_problem(venv: Path) -> str | None:
    """Why LocalStack cannot start from `venv`, or None."""
    if not (venv / "bin" / "python").exists():
        if python313() is None:
            return ("Python 3.13 not found (looked for $LOCALSTACK_PYTHON, ~/.pyenv/versions/3.13.0/bin/python "
                    "and python3.13 on PATH): LocalStack 2026.3 needs it")
        return f"no LocalStack venv at {venv}: run `make localstack-venv`"
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m, json, sys; "
         "print(json.dumps([m.version('localstack-core'), sorted(f'{e.group}:{e.name}' for e in m.entry_points() "
         "if e.value.startswith('devtools.localstack_executor.')), sys.version_info[:2] >= (3, 13)]))"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        version, plugins, new_enough = json.loads(probe.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"{venv} has no localstack-core ({probe.stderr.strip()[-300:]}): run `make localstack-venv`"
    missing = sorted(set(PLUGINS) - set(plugins))
    if version != VERSION or missing or not new_enough:
        return (f"{venv} has localstack-core {version} (want {VERSION}) and lacks plugins {missing or 'none'}: "
                "run `make localstack-venv`")
    return None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalStack(LoopbackServer):
    """LocalStack's runtime (`python -m localstack.runtime.main`) as a child process on loopback."""

    name = "LocalStack"
    stop_timeout = 15.0  # SIGTERM: LocalStack stops its execution environments (~4 s), then exits

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        venv: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        services: tuple[str, ...] = SERVICES,
        startup_timeout: float = 30.0,
        function_python: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(host, port)  # loopback only: it runs deployed code for anyone who reaches it
        self.state_dir = Path(state_dir).resolve()
        self.venv = venv or default_venv()
        self.services = services
        self.startup_timeout = startup_timeout
        self.function_python = function_python or str(REPO_ROOT / ".venv" / "bin" / "python")
        self.extra_env = dict(extra_env or {})
        self.version = ""

    @property
    def log_path(self) -> Path:
        return self.state_dir / "localstack.log"

    def start(self) -> Self:
        if self.running:
            return self
        problem = venv_problem(self.venv)
        if problem:
            raise LocalStackUnavailableError(problem)
        t0 = time.perf_counter()
        for sub in ("fs", "tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or free_port(self.bind)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- lives as long as the process
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_", "PYTHON"))}
        env.update({
            "GATEWAY_LISTEN": f"{url_host(self.bind)}:{self.port}",
            # twisted exits on SIGTERM in ~4 s (hypercorn hangs); this one binds only self.bind (gateway.py)
            "GATEWAY_SERVER": "twisted-loopback",
            "DNS_ADDRESS": "0",  # no DNS server (it would bind port 53 on every interface)
            "DISABLE_EVENTS": "1",  # no analytics calls home
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "FILESYSTEM_ROOT": str(self.state_dir / "fs"),
            "TMPDIR": str(self.state_dir / "tmp"),  # unzipped code and layers, the executor's run files
            "SERVICES": ",".join(self.services),
            "LAMBDA_RUNTIME_EXECUTOR": "slipstream",
            "SLIPSTREAM_LAMBDA_PYTHON": self.function_python,
            # Keep idle execution environments (warm interpreters) as the built-in emulator does.
            "LAMBDA_KEEPALIVE_MS": "300000",
            **self.extra_env,
        })  # fmt: skip
        self._proc = subprocess.Popen(
            [str(self.venv / "bin" / "python"), "-m", "localstack.runtime.main"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            cwd=self.state_dir, start_new_session=True,  # Ctrl-C reaches the test run; stop() ends this
        )  # fmt: skip
        try:
            self._await_healthy(t0 + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - t0
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_localstack/health", timeout=2) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _await_healthy(self, deadline: float) -> None:
        assert self._proc is not None
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                raise LocalStackStartError(f"LocalStack exited with code {self._proc.returncode} before it was "
                                           f"healthy; last lines of {self.log_path}:\n{self.log_tail()}")
            body = self.health()
            states = (body or {}).get("services", {})
            if body and all(states.get(s) in HEALTHY for s in self.services):
                self.version = str(body.get("version", ""))
                return
            time.sleep(0.2)
        raise LocalStackStartError(f"LocalStack not healthy after {self.startup_timeout:.0f} s; "
                                   f"last lines of {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class LocalStackSession:
    """LocalStack for every service it can run offline, the built-in emulator for BUILT_IN_SERVICES.

    `env()` is what boto3 needs: AWS_ENDPOINT_URL (LocalStack) plus AWS_ENDPOINT_URL_DYNAMODB and
    AWS_ENDPOINT_URL_CLOUDFRONT (the emulator). The deployer passes the per-service ones on to every
    deployed function, so the Lambdas LocalStack runs reach the same table.
    """

    def __init__(self, state_dir: str | os.PathLike[str], **localstack_options: Any) -> None:
        root = Path(state_dir)
        # The emulator first: its ~0.4 s start fits inside LocalStack's, and a LocalStack failure
        # then still has a complete session to stop.
        self.emulator = LocalAWS(state_dir=root / "localaws")
        self.localstack = LocalStack(root / "localstack", **localstack_options)

    def start(self) -> LocalStackSession:
        try:
            self.emulator.start()
            self.localstack.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.localstack.stop()
        finally:
            self.emulator.stop()

    def env(self) -> dict[str, str]:
        env = self.localstack.env()
        for service in BUILT_IN_SERVICES:
            env[endpoint_variable(service)] = self.emulator.endpoint
        return env

    def describe(self) -> str:
        return (f"LocalStack {self.localstack.version} (host process, no Docker) ready at "
                f"{self.localstack.endpoint} in {self.localstack.start_seconds:.2f} s running "
                f"{', '.join(self.localstack.services)}; the built-in emulator at {self.emulator.endpoint} "
                f"runs {', '.join(BUILT_IN_SERVICES)} (LocalStack community has no offline DynamoDB and no CloudFront)")

    def __enter__(self) -> LocalStackSession:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
