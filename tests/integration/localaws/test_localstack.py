"""LocalStack as a host process (no Docker) with the project's Lambda executor (devtools/localstack_executor).

Runs with SLIPSTREAM_AWS=localstack (the LocalStack stage of `make test`: `make localstack`); on the
built-in emulator every test here that needs LocalStack is skipped, saying so. What the executor
must do, checked through LocalStack's own Lambda API: run the handler in the configured
interpreter with layers on the paths as in Lambda's /opt, reuse a warm sandbox, and report
timeouts, crashes, import errors and handler errors the AWS way. What the launcher must do: bind
loopback only, fail fast with LocalStack's last log lines, and leave no process behind.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.localaws.deploy import REPO_ROOT, Deployment, deploy
from devtools.localaws.server import descendants
from devtools.localstack_executor.launcher import (
    LocalStack,
    LocalStackSession,
    LocalStackStartError,
    python313,
    venv_problem,
)

pytestmark = [pytest.mark.integration, pytest.mark.localstack]

ROLE = "arn:aws:iam::000000000000:role/slipstream-executor-test"
HANDLERS = '''
import json, os, shutil, subprocess, sys, time

WARM = {"n": 0}


def describe(event, context):
    import layered  # from the layer's python/
    WARM["n"] += 1
    tool = shutil.which("layer-tool")
    return {
        "python": sys.executable, "layered": layered.VALUE, "tool": tool,
        "tool_says": subprocess.run([tool], capture_output=True, text=True).stdout.strip() if tool else None,
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""), "pid": os.getpid(), "warm_count": WARM["n"],
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"), "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "cwd": os.getcwd(), "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(), "event": event,
        "leaked": sorted(k for k in os.environ if k.startswith(("GATEWAY_", "SLIPSTREAM_", "PYTEST"))),
    }


def fail(event, context):
    raise ValueError("bad chunk: " + event["why"])


def sleep(event, context):
    child = subprocess.Popen(["sleep", "60"])  # like ffmpeg: must die with the sandbox
    print("child", child.pid, flush=True)
    time.sleep(event["seconds"])
    return "woke up"


def crash(event, context):
    print("about to exit", flush=True)
    os._exit(3)
'''


def _zip(files: dict[str, tuple[str, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (text, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = mode << 16
            zf.writestr(info, text)
    return buf.getvalue()


@pytest.fixture(scope="module")
def functions(localstack: LocalStackSession, boto: Callable[[str], Any]) -> Callable[..., str]:
    """make(handler, timeout=10) -> the name of a function deployed with the test layer."""
    lam = boto("lambda")
    layer = lam.publish_layer_version(
        LayerName=f"exec-test-{uuid.uuid4().hex[:6]}",
        Content={"ZipFile": _zip({"python/layered.py": ("VALUE = 'from the layer'\n", 0o644),
                                  "bin/layer-tool": ("#!/bin/sh\necho layer tool ran\n", 0o755),
                                  "lib/libnothing.txt": ("a library directory\n", 0o644)})},
        CompatibleRuntimes=["python3.11"],
    )["LayerVersionArn"]  # fmt: skip
    code = _zip({"handlers.py": (HANDLERS, 0o644), "broken.py": ("import no_such_module_here\n", 0o644)})

    def make(handler: str, timeout: int = 10) -> str:
        name = f"exec-{handler.replace('.', '-')}-{uuid.uuid4().hex[:6]}"
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=handler, Timeout=timeout,
                            Code={"ZipFile": code}, Layers=[layer])
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        return name

    return make


def _invoke(boto: Callable[[str], Any], name: str, event: Any) -> tuple[str | None, Any, str]:
    resp = boto("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    logs = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    return resp.get("FunctionError"), json.loads(resp["Payload"].read() or b"null"), logs


def test_given_a_function_with_a_layer_then_it_runs_in_the_project_interpreter_with_opt_paths(
    functions: Callable[..., str], boto: Callable[[str], Any], localstack: LocalStackSession
) -> None:
    name = functions("handlers.describe")
    error, first, logs = _invoke(boto, name, {"chunk": 7})
    assert error is None, first
    assert first["python"] == str(Path(localstack.localstack.function_python)), "the function's own interpreter"
    assert first["layered"] == "from the layer"  # python/ on sys.path
    assert first["tool"] and first["tool"].endswith("/bin/layer-tool") and first["tool_says"] == "layer tool ran"
    assert any(p.endswith("/lib") for p in first["ld_library_path"].split(":"))  # lib/ on LD_LIBRARY_PATH
    assert first["endpoint"] == localstack.localstack.endpoint  # functions call LocalStack back
    assert first["cwd"] == first["task_root"] and first["event"] == {"chunk": 7}
    assert 0 < first["remaining_ms"] <= 10_000
    assert first["leaked"] == [], "nothing from LocalStack's or the test's environment reaches the function"
    assert f"START RequestId: {first['request_id']}" in logs and f"REPORT RequestId: {first['request_id']}" in logs

    _, second, _ = _invoke(boto, name, {"chunk": 8})
    assert (second["pid"], second["warm_count"]) == (first["pid"], 2), "a warm start reuses the sandbox"
    assert first["pid"] in descendants(localstack.localstack.pid), "the handler runs under LocalStack, not here"
    assert first["pid"] != os.getpid()


def test_given_handler_and_import_errors_then_they_come_back_in_lambdas_shape(
    functions: Callable[..., str], boto: Callable[[str], Any]
) -> None:
    error, payload, logs = _invoke(boto, functions("handlers.fail"), {"why": "corrupt"})
    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError" and payload["errorMessage"] == "bad chunk: corrupt"
    assert payload["stackTrace"] and "[ERROR] ValueError: bad chunk: corrupt" in logs

    error, payload, _ = _invoke(boto, functions("broken.handler"), {})
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module_here" in payload["errorMessage"]


def test_given_a_timeout_then_the_sandbox_and_its_children_are_killed_and_the_next_call_starts_cold(
    functions: Callable[..., str], boto: Callable[[str], Any], localstack: LocalStackSession
) -> None:
    name = functions("handlers.sleep", timeout=1)
    started = time.monotonic()
    error, payload, logs = _invoke(boto, name, {"seconds": 30})
    assert time.monotonic() - started < 15, "the timeout stops the invocation, not the handler finishing"
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    child = int(logs.split("child ", 1)[1].split()[0])
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]

    error, payload, _ = _invoke(boto, name, {"seconds": 0})
    assert (error, payload) == (None, "woke up"), "a fresh sandbox after the timeout"


def test_given_the_interpreter_dies_mid_invocation_then_it_is_a_runtime_exit_error(
    functions: Callable[..., str], boto: Callable[[str], Any]
) -> None:
    name = functions("handlers.crash")
    error, payload, logs = _invoke(boto, name, {})
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"] and "about to exit" in logs
    error, payload, _ = _invoke(boto, name, {})
    assert payload["errorType"] == "Runtime.ExitError", "the next invocation gets a new sandbox, and crashes again"


def test_given_a_segment_lands_then_the_deployed_lambda_records_it_in_the_emulators_table(
    aws: dict[str, str], localstack: LocalStackSession, boto: Callable[[str], Any], wait_for: Any
) -> None:
    """S3 notification -> Lambda on LocalStack; the handler's DynamoDB write reaches the built-in emulator."""
    dep: Deployment = deploy(Path(__file__).parent / "skeleton_app", endpoint=aws["AWS_ENDPOINT_URL"])
    key = f"ch-{uuid.uuid4().hex[:8]}/000001.ts"
    put = boto("s3").put_object(Bucket=dep.ingest_bucket, Key=key, Body=b"\x47" * 188)
    ddb = boto("dynamodb")
    assert ddb.meta.endpoint_url == localstack.emulator.endpoint
    item = wait_for(
        lambda: ddb.get_item(TableName=dep.table_name,
                             Key={"pk": {"S": f"SEG#{key}"}, "sk": {"S": "RUN"}}).get("Item"),
        timeout=60, what="the LocalStack Lambda's record",
    )  # fmt: skip
    assert item["function"]["S"] == dep.function_name("on_segment_uploaded")
    assert item["etag"]["S"] == put["ETag"].strip('"')
    assert int(item["pid"]["N"]) in descendants(localstack.localstack.pid)
    conf = boto("lambda").get_function_configuration(FunctionName=dep.function_name("on_segment_uploaded"))
    assert conf["Environment"]["Variables"]["AWS_ENDPOINT_URL_DYNAMODB"] == localstack.emulator.endpoint


def _listening(pids: list[int]) -> set[str]:
    """host:port of every TCP socket in LISTEN state that one of pids holds."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                addr, port = cols[1].split(":")
                raw = bytes.fromhex(addr)
                if len(raw) == 4:
                    host = ".".join(str(b) for b in reversed(raw))
                else:  # ::1 or a v4-mapped address
                    words = [raw[i:i + 4][::-1].hex() for i in range(0, 16, 4)]
                    host = "::1" if "".join(words) == "0" * 31 + "1" else ":".join(words)
                found.add(f"{host}:{int(port, 16)}")
    return found


def test_every_port_the_localstack_session_listens_on_is_loopback(localstack: LocalStackSession) -> None:
    pids = [localstack.localstack.pid, *descendants(localstack.localstack.pid),
            localstack.emulator.pid, *descendants(localstack.emulator.pid)]
    listening = _listening(pids)
    assert f"127.0.0.1:{localstack.localstack.port}" in listening
    assert all(a.startswith(("127.", "::1:")) for a in listening), listening


def _processes_under(root: Path) -> list[str]:
    """pid and command line of every process whose working directory or command line names root."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(root) in cmdline or cwd.startswith(str(root)):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.fixture
def lone_localstack(localstack: LocalStackSession, tmp_path: Path) -> Iterator[Callable[..., LocalStack]]:
    """make(**options) -> a LocalStack of the test's own; afterwards no process it started may be left."""
    started: list[LocalStack] = []

    def make(**options: Any) -> LocalStack:
        ls = LocalStack(tmp_path / f"ls{len(started)}", **options)
        started.append(ls)
        return ls

    yield make
    for ls in started:
        ls.stop()
    assert _processes_under(tmp_path) == []


def test_given_another_function_interpreter_then_handlers_run_in_it(lone_localstack: Callable[..., LocalStack]) -> None:
    other = python313()
    assert other is not None  # the LocalStack stage runs only where it exists
    ls = lone_localstack(function_python=other).start()
    lam = boto3.client("lambda", endpoint_url=ls.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    code = "import sys\ndef handler(event, context):\n    return [sys.executable, list(sys.version_info[:2])]\n"
    lam.create_function(FunctionName="which-python", Runtime="python3.13", Role=ROLE, Handler="h.handler",
                        Code={"ZipFile": _zip({"h.py": (code, 0o644)})})
    lam.get_waiter("function_active_v2").wait(FunctionName="which-python")
    resp = lam.invoke(FunctionName="which-python", Payload=b"{}")
    assert json.loads(resp["Payload"].read()) == [other, [3, 13]]


def test_given_a_localstack_that_exits_at_start_then_the_run_stops_with_its_last_log_lines(
    lone_localstack: Callable[..., LocalStack]
) -> None:
    ls = lone_localstack(extra_env={"GATEWAY_LISTEN": "127.0.0.1:not-a-port"})
    started = time.monotonic()
    with pytest.raises(LocalStackStartError) as err:
        ls.start()
    assert time.monotonic() - started < 30
    assert "exited with code" in str(err.value) and "not-a-port" in str(err.value)
    assert not ls.running


def test_given_a_localstack_that_never_becomes_healthy_then_the_run_stops_after_the_timeout_leaving_nothing(
    lone_localstack: Callable[..., LocalStack]
) -> None:
    ls = lone_localstack(services=("s3", "no-such-service"), startup_timeout=6)
    started = time.monotonic()
    with pytest.raises(LocalStackStartError) as err:
        ls.start()
    waited = time.monotonic() - started
    assert 6 <= waited < 6 + 20, waited  # the timeout, then at most the stop's grace period
    assert "not healthy after 6 s" in str(err.value) and "localstack.log" in str(err.value)
    assert not ls.running and _processes_under(ls.state_dir) == []


def test_given_ctrl_c_then_the_served_session_stops_every_process_it_started(
    localstack: LocalStackSession, tmp_path: Path
) -> None:
    """`python -m devtools.localstack_executor serve` with a warm Lambda sandbox, then SIGINT (Ctrl-C)."""
    state = tmp_path / "served"
    with open(tmp_path / "serve.err", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "devtools.localstack_executor", "serve", "--state-dir",
                                 str(state)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("export "), (tmp_path / "serve.err").read_text()[-2000:]
        env = dict(kv.split("=", 1) for kv in line.split()[1:])
        lam = boto3.client("lambda", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                           aws_access_key_id="test", aws_secret_access_key="test")
        lam.create_function(FunctionName="warm", Runtime="python3.11", Role=ROLE, Handler="handlers.fail",
                            Code={"ZipFile": _zip({"handlers.py": (HANDLERS, 0o644)})})
        lam.get_waiter("function_active_v2").wait(FunctionName="warm")
        assert lam.invoke(FunctionName="warm", Payload=b'{"why": "x"}').get("FunctionError") == "Unhandled"
        running = _processes_under(state)
        assert any("_runner.py --serve" in p for p in running), running  # the warm sandbox
        assert any("devtools.localaws serve" in p for p in running), running  # the DynamoDB/CloudFront emulator

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
        assert _processes_under(state) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_given_no_python_313_then_the_reason_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one reason the LocalStack stage may skip, spelled out (runs on any machine)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LOCALSTACK_PYTHON", raising=False)
    assert python313() is None
    reason = venv_problem(tmp_path / "no-venv")
    assert reason is not None and reason.startswith("Python 3.13 not found")


def test_given_python_313_but_no_localstack_venv_then_the_run_stops_at_once_saying_what_to_run(tmp_path: Path) -> None:
    if python313() is None:
        pytest.skip("LocalStack run skipped: Python 3.13 not found (the one reason the LocalStack stage skips)")
    env = {**os.environ, "SLIPSTREAM_AWS": "localstack", "LOCALSTACK_VENV": str(tmp_path / "missing")}
    env.pop("LOCALSTACK_ENDPOINT", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-q", "-p", "no:cacheprovider",
         f"{__file__}::test_given_a_function_with_a_layer_then_it_runs_in_the_project_interpreter_with_opt_paths",
         f"{__file__}::test_given_handler_and_import_errors_then_they_come_back_in_lambdas_shape"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and time.monotonic() - started < 60
    assert f"no LocalStack venv at {tmp_path / 'missing'}: run `make localstack-venv`" in proc.stdout, proc.stdout
    assert "passed" not in proc.stdout.splitlines()[-1]
