"""Runs ONE Lambda invocation inside a fresh interpreter (the executor starts this file as a script).

It mimics the Python managed runtime closely enough for Chalice and Powertools handlers: the task root
is first on sys.path, a context object carries the invocation facts, the handler's prints go to the log
(stdout/stderr are files the executor owns), and the result or the error, in Lambda's JSON shape, is
written to the result file named on the command line so log output can never corrupt it.

Kept dependency-free (stdlib only): it runs with the function's own PYTHONPATH, not devtools'.
usage: python _runner.py SPEC_JSON_FILE RESULT_JSON_FILE       one invocation (cold)
       python _runner.py --serve TASK_ROOT REQUEST_FD DONE_FD  a warm sandbox: one invocation per
           request line {"spec": {...}, "log": path}; output goes to that invocation's log file (fds 1
           and 2 are re-pointed, so child processes such as ffmpeg log there too); the result comes
           back as one JSON line on DONE_FD (no files per invocation: pipes only).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the real runtime's context that handlers use."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.function_name: str = spec["function_name"]
        self.function_version: str = spec.get("function_version", "$LATEST")
        self.invoked_function_arn: str = spec["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(spec["memory_limit_in_mb"])
        self.aws_request_id: str = spec["aws_request_id"]
        self.log_group_name: str = spec["log_group_name"]
        self.log_stream_name: str = spec["log_stream_name"]
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline: float = float(spec["deadline"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(kind: str, exc: BaseException, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": kind,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def invoke(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the handler once: {"ok": bool, "payload": result or Lambda-shaped error}."""
    context = LambdaContext(spec)
    rid = context.aws_request_id
    module_name, _, func_name = spec["handler"].rpartition(".")
    result: dict[str, Any]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the runtime reports import problems as a typed init error
        traceback.print_exc()
        result = {"ok": False, "payload": _error("Runtime.ImportModuleError", exc, rid)}
    else:
        handler = getattr(module, func_name, None)
        if handler is None:
            missing = AttributeError(f"Handler '{func_name}' missing on module '{module_name}'")
            result = {"ok": False, "payload": _error("Runtime.HandlerNotFound", missing, rid)}
        else:
            try:
                value = handler(spec["event"], context)
            except Exception as exc:
                # Same line shape as the managed runtime so log scrapers work on both.
                print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
                traceback.print_exc()
                result = {"ok": False, "payload": _error(type(exc).__name__, exc, rid)}
            else:
                try:
                    result = {"ok": True, "payload": json.loads(json.dumps(value))}
                except (TypeError, ValueError) as exc:
                    result = {"ok": False, "payload": _error("Runtime.MarshalError", exc, rid)}
    sys.stdout.flush()
    sys.stderr.flush()
    return result


def main(spec_path: str, result_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    # The task root replaces this script's own directory, as in the managed runtime.
    sys.path[0] = spec["task_root"]
    result = invoke(spec)
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, result_path)
    return 0


def serve(task_root: str, request_fd: int, done_fd: int) -> int:
    sys.path[0] = task_root
    # Our pipes must not leak into whatever the handler spawns (os.system, fork).
    os.set_inheritable(request_fd, False)
    os.set_inheritable(done_fd, False)
    with os.fdopen(request_fd, "r", encoding="utf-8") as requests:
        for line in requests:
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            answer = (json.dumps(invoke(request["spec"])) + "\n").encode()
            view = memoryview(answer)
            while view:  # a result can exceed the pipe's buffer: the executor reads as we write
                view = view[os.write(done_fd, view):]
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        sys.exit(serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    sys.exit(main(sys.argv[1], sys.argv[2]))
