"""A LocalStack Lambda runtime executor that runs Python handlers in local subprocesses (no Docker).

LocalStack's Lambda service creates one RuntimeExecutor per execution environment and sends it one
invocation at a time. This one keeps one warm interpreter per environment: the sandbox and the
in-sandbox runner of devtools/localaws (`_Sandbox`, `_runner.py`), talking over pipes, so handlers
run the same way on LocalStack as on the built-in emulator:

- the task root (LocalStack's unzipped code) first on sys.path; layers as in Lambda's /opt:
  `python/` and `python/lib/pythonX.Y/site-packages` on sys.path, `bin/` on PATH, `lib/` on
  LD_LIBRARY_PATH, in the function's layer order;
- the function's interpreter is SLIPSTREAM_LAMBDA_PYTHON (default: the repo's .venv/bin/python,
  where chalice, powertools and boto3 are installed), not LocalStack's own 3.13;
- a clean environment: LocalStack's execution-environment variables (credentials, AWS_ENDPOINT_URL,
  AWS_LAMBDA_*, the function's own variables) plus the paths above, nothing from LocalStack's process;
- errors in Lambda's shape: a handler exception `{"errorType", "errorMessage", ...}`,
  `Runtime.ImportModuleError`, `Sandbox.Timedout` after the function's timeout (the sandbox and
  everything it spawned are killed; the next invocation starts cold), `Runtime.ExitError` when the
  interpreter dies mid-invocation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from devtools.localaws.executor import BASE_PATH, RUNNER, _Sandbox

LOG = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_ENV = "SLIPSTREAM_LAMBDA_PYTHON"
MAX_LOG_CHARS = 256_000  # get_logs() keeps the tail of an environment's output


def function_python() -> str:
    """The interpreter handlers run in: SLIPSTREAM_LAMBDA_PYTHON, else the repo's venv."""
    return os.environ.get(PYTHON_ENV) or str(REPO_ROOT / ".venv" / "bin" / "python")


def runtime_env(env_vars: dict[str, str], task_root: Path, layers: list[Path], runtime: str,
                home: Path) -> dict[str, str]:
    """LocalStack's variables for the environment with Lambda's paths for this host instead of
    /var/task and /opt (the function's own variables, applied by LocalStack last, still win)."""
    version = runtime.removeprefix("python")  # "3.11"
    py_paths = [str(p) for layer in layers for p in (layer / "python" / "lib" / f"python{version}" / "site-packages",
                                                     layer / "python") if p.is_dir()]
    bins = [str(layer / "bin") for layer in layers if (layer / "bin").is_dir()]
    libs = [str(p) for p in (task_root / "lib", *(layer / "lib" for layer in layers)) if p.is_dir()]
    own = dict(env_vars)
    env = {
        "LANG": "en_US.UTF-8",
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        # No X-Ray daemon here; Powertools Tracer would warn on every segment.
        "POWERTOOLS_TRACE_DISABLED": "true",
        **own,
        "PATH": os.pathsep.join([*bins, BASE_PATH]),
        "PYTHONPATH": os.pathsep.join([str(task_root), *py_paths]),
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(RUNNER.parent),
        # What the managed Python runtime sets (LocalStack's RIE would report AWS_Lambda_rapid).
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
    }
    if libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    for key in ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH"):  # a function that sets its own keeps it
        if key in own:
            env[key] = own[key]
    return {k: str(v) for k, v in env.items()}


class SubprocessRuntimeExecutor(RuntimeExecutor):
    """One execution environment = one warm interpreter, restarted after a timeout or a crash."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.run_dir = Path(tempfile.gettempdir()) / "slipstream-lambda" / id
        self.python = function_python()
        self.env: dict[str, str] = {}
        self.task_root = Path()
        self.sandbox: _Sandbox | None = None
        self.logs = ""

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, env_vars: dict[str, str]) -> None:
        cfg = self.function_version.config
        runtime = str(cfg.runtime or "")
        if not runtime.startswith("python"):
            raise LambdaRuntimeException(
                f"the slipstream executor runs Python functions only; {self.function_version.qualified_arn} "
                f"has runtime {runtime or 'none (container image)'}"
            )
        if not os.access(self.python, os.X_OK):
            raise LambdaRuntimeException(f"function interpreter {self.python} not found: set {PYTHON_ENV}")
        self.task_root = Path(cfg.code.get_unzipped_code_location())
        layers = [Path(layer.code.get_unzipped_code_location()) for layer in cfg.layers if layer.code]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.env = runtime_env(env_vars, self.task_root, layers, runtime, self.run_dir)
        self.sandbox = self._spawn()

    def _spawn(self) -> _Sandbox:
        return _Sandbox(self.id, self.task_root, self.env, self.run_dir, self.function_version.id.function_name,
                        python=self.python)

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox = None
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- invocations -------------------------------------------------------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        cfg = self.function_version.config
        request_id = payload["invoke-id"]
        if self.sandbox is None or not self.sandbox.alive:  # the last one timed out or crashed: re-init
            self.sandbox = self._spawn()
        sandbox = self.sandbox
        log_path = self.run_dir / f"{request_id}.log"
        started = time.time()
        spec = {
            "task_root": str(self.task_root),
            "handler": cfg.handler,
            "event": json.loads(payload["payload"] or "null"),
            "function_name": self.function_version.id.function_name,
            "function_version": self.function_version.id.qualifier,
            "invoked_function_arn": payload["invoked-function-arn"],
            "memory_limit_in_mb": cfg.memory_size,
            "aws_request_id": request_id,
            "log_group_name": self.env.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            "log_stream_name": self.env.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            "deadline": started + cfg.timeout,
        }
        log_path.write_text(f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n")
        outcome, result = sandbox.run(spec, log_path, timeout=float(cfg.timeout))
        body, is_error, note = self._result(outcome, result, request_id, sandbox)
        duration_ms = (time.time() - started) * 1000
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{note}END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: "
                      f"{duration_ms:.2f} ms\tBilled Duration: {max(1, round(duration_ms))} ms\t"
                      f"Memory Size: {cfg.memory_size} MB\n")
        logs = log_path.read_text(encoding="utf-8", errors="replace")
        self.logs = (self.logs + logs)[-MAX_LOG_CHARS:]
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()
        return InvocationResult(request_id=request_id, payload=body.encode(), is_error=is_error, logs=logs)

    def _result(self, outcome: str, result: dict[str, Any] | None, request_id: str,
                sandbox: _Sandbox) -> tuple[str, bool, str]:
        """(payload JSON, is_error, a line for the log) in the shapes Lambda's Invoke returns."""
        if outcome == "ok" and result is not None:
            return json.dumps(result["payload"]), not result["ok"], ""
        if outcome == "timeout":
            self.sandbox = None
            message = (f"{datetime.now(UTC).isoformat()} {request_id} Task timed out after "
                       f"{float(self.function_version.config.timeout):.2f} seconds")
            return json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"}), True, f"{message}\n"
        self.sandbox = None  # died: sys.exit, os._exit, a signal, the OOM killer
        message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {sandbox.returncode}"
        return json.dumps({"errorMessage": message, "errorType": "Runtime.ExitError"}), True, f"{message}\n"

    # -- what LocalStack asks about the environment ---------------------------------------------------
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # Functions run on this host: LocalStack's gateway address as it listens (loopback here).
        host = str(config.GATEWAY_LISTEN[0].host)
        return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    def get_runtime_endpoint(self) -> str:
        # LocalStack's callback API for its Go init; unused (invoke() answers directly), kept truthful.
        return f"http://{self.get_endpoint_from_executor()}:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        return self.logs

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Unzip code and layers once per version (LocalStack's cache under its temp dir)."""
        cfg = function_version.config
        if cfg.code:
            cfg.code.prepare_for_execution()
        for layer in cfg.layers:
            if layer.code:
                layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing beyond LocalStack's own code cache, which LocalStack deletes."""

    @classmethod
    def validate_environment(cls) -> bool:
        python = function_python()
        if not os.access(python, os.X_OK):
            LOG.warning("slipstream executor: function interpreter %s not found; set %s", python, PYTHON_ENV)
            return False
        LOG.info("slipstream executor: Python functions run with %s (LocalStack itself: %s)", python, sys.executable)
        return True

