"""The emulator process itself: loopback only, fast start, clean stop, usable env."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.localaws import LocalAWS, loopback_host
from devtools.localaws.server import REPO_ROOT, descendants

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_given_a_non_loopback_host_when_creating_then_value_error_names_the_reason(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalAWS(host=host)


@pytest.mark.parametrize(("host", "bind"), [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"),
                                            ("::1", "::1"), ("127.0.0.5", "127.0.0.5")])
def test_given_a_loopback_host_then_it_is_accepted(host: str, bind: str) -> None:
    assert loopback_host(host) == bind


def test_given_a_public_host_on_the_cli_then_serve_exits_with_an_error_and_binds_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "devtools.localaws", "serve", "--host", "0.0.0.0"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "loopback" in proc.stderr


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", source)
    return buf.getvalue()


def _client(server: LocalAWS, service: str) -> object:
    return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def test_when_started_then_ready_quickly_and_env_reaches_it(tmp_path: Path) -> None:
    server = LocalAWS(state_dir=tmp_path)
    t0 = time.perf_counter()
    with server:
        elapsed = time.perf_counter() - t0
        print(f"\nLocalAWS start: {server.start_seconds:.3f} s (ready line), {elapsed:.3f} s (wall)")
        env = server.env()
        assert env["AWS_ENDPOINT_URL"] == server.endpoint
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert env["AWS_DEFAULT_REGION"] == "us-east-1"
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket="probe")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["probe"]
    # Generous: the < 3 s target is for the bench; a loaded CI box must not fail here.
    assert server.start_seconds < 15


def test_given_a_running_lambda_when_stopped_then_no_child_process_survives(tmp_path: Path) -> None:
    server = LocalAWS(state_dir=tmp_path).start()
    try:
        iam, lam = _client(server, "iam"), _client(server, "lambda")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        # The handler spawns a grandchild (like ffmpeg) and both sleep well past the stop.
        code = _zip("import subprocess, time\n"
                    "def handler(event, context):\n"
                    "    subprocess.Popen(['sleep', '60'])\n"
                    "    time.sleep(60)\n")
        lam.create_function(FunctionName="sleeper", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                            Handler="handler.handler", Code={"ZipFile": code}, Timeout=120)
        lam.invoke(FunctionName="sleeper", InvocationType="Event", Payload=b"{}")  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(descendants(server.pid)) < 2:
            time.sleep(0.1)
        tree = descendants(server.pid)
        assert len(tree) >= 2, "the Lambda and its grandchild should be running before the stop"
        server_pid = server.pid
    finally:
        server.stop()
    time.sleep(0.2)
    alive = [pid for pid in [server_pid, *tree] if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert alive == []
    assert not server.running


def test_given_a_handler_that_sleeps_past_its_timeout_then_it_is_killed_and_reported(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path) as server:
        iam, lam = _client(server, "iam"), _client(server, "lambda")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        code = _zip("import time\ndef handler(event, context):\n    time.sleep(30)\n")
        lam.create_function(FunctionName="late", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                            Handler="handler.handler", Code={"ZipFile": code}, Timeout=1)
        t0 = time.perf_counter()
        resp = lam.invoke(FunctionName="late", Payload=b"{}")  # type: ignore[attr-defined]
        took = time.perf_counter() - t0
        payload = json.loads(resp["Payload"].read())
        assert resp["FunctionError"] == "Unhandled"
        assert payload["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
        assert took < 10
        (log_file,) = server.log_files("late")
        assert "Task timed out" in log_file.read_text()


def test_state_dir_defaults_under_the_working_directory(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert LocalAWS().state_dir == tmp_path / ".localaws"
    finally:
        os.chdir(cwd)


def test_given_a_layer_then_its_python_dir_is_importable_and_its_bin_dir_is_on_path(tmp_path: Path) -> None:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        script = zipfile.ZipInfo("bin/hello-layer")
        script.external_attr = 0o755 << 16  # executables must survive the unzip
        zf.writestr(script, "#!/bin/sh\necho hello from the layer\n")
        zf.writestr("python/layermod.py", "VALUE = 'layer python'\n")
    code = _zip(
        "import os, shutil, subprocess, layermod\n"
        "def handler(event, context):\n"
        "    out = subprocess.run(['hello-layer'], capture_output=True, text=True).stdout.strip()\n"
        "    return {'mod': layermod.VALUE, 'bin': out, 'sh': shutil.which('sh'),\n"
        "            'name': context.function_name, 'mem': context.memory_limit_in_mb,\n"
        "            'arn': context.invoked_function_arn, 'group': context.log_group_name,\n"
        "            'endpoint': os.environ['AWS_ENDPOINT_URL'], 'own': os.environ['OWN']}\n"
    )
    with LocalAWS(state_dir=tmp_path) as server:
        iam, lam = _client(server, "iam"), _client(server, "lambda")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        layer_arn = lam.publish_layer_version(  # type: ignore[attr-defined]
            LayerName="tools", Content={"ZipFile": layer.getvalue()})["LayerVersionArn"]
        lam.create_function(FunctionName="uses-layer", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                            Handler="handler.handler", Code={"ZipFile": code}, Layers=[layer_arn],
                            MemorySize=256, Environment={"Variables": {"OWN": "set-by-config"}})
        resp = lam.invoke(FunctionName="uses-layer", Payload=b"{}")  # type: ignore[attr-defined]
        out = json.loads(resp["Payload"].read())
        assert "FunctionError" not in resp, out
        assert out == {
            "mod": "layer python", "bin": "hello from the layer", "sh": "/usr/bin/sh",
            "name": "uses-layer", "mem": 256,
            "arn": "arn:aws:lambda:us-east-1:123456789012:function:uses-layer",
            "group": "/aws/lambda/uses-layer", "endpoint": server.endpoint, "own": "set-by-config",
        }


def test_given_failing_handlers_then_errors_come_back_in_lambdas_shape(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path) as server:
        iam, lam = _client(server, "iam"), _client(server, "lambda")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        cases = {
            "raises": ("class ChunkError(Exception): pass\n"
                       "def handler(event, context):\n    raise ChunkError('bad chunk 7')\n",
                       "ChunkError", "bad chunk 7"),
            "broken-import": ("import not_a_module_anywhere\n", "Runtime.ImportModuleError", "not_a_module"),
            "no-handler": ("x = 1\n", "Runtime.HandlerNotFound", "handler"),
            "exits": ("import os\ndef handler(event, context):\n    os._exit(3)\n",
                      "Runtime.ExitError", "exit status 3"),
        }
        for name, (source, kind, text) in cases.items():
            lam.create_function(FunctionName=name, Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                                Handler="handler.handler", Code={"ZipFile": _zip(source)})
            resp = lam.invoke(FunctionName=name, Payload=b"{}")  # type: ignore[attr-defined]
            payload = json.loads(resp["Payload"].read())
            assert resp["FunctionError"] == "Unhandled", name
            assert payload["errorType"] == kind, (name, payload)
            assert text in payload["errorMessage"], (name, payload)


def test_given_an_on_failure_destination_when_async_retries_are_exhausted_then_the_event_goes_there(
    tmp_path: Path,
) -> None:
    with LocalAWS(state_dir=tmp_path, async_retry_delays=(0.2, 0.2)) as server:
        iam, lam, sqs = _client(server, "iam"), _client(server, "lambda"), _client(server, "sqs")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        url = sqs.create_queue(QueueName="failed-events")["QueueUrl"]  # type: ignore[attr-defined]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # type: ignore[attr-defined]
        lam.create_function(FunctionName="fails", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                            Handler="handler.handler",
                            Code={"ZipFile": _zip("def handler(event, context):\n    raise ValueError('no')\n")})
        lam.put_function_event_invoke_config(  # type: ignore[attr-defined]
            FunctionName="fails", MaximumRetryAttempts=1,
            DestinationConfig={"OnFailure": {"Destination": arn}})
        lam.invoke(FunctionName="fails", InvocationType="Event", Payload=b'{"chunk": 7}')  # type: ignore[attr-defined]
        deadline, msgs = time.monotonic() + 30, list[dict[str, Any]]()
        while time.monotonic() < deadline and not msgs:
            msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])  # type: ignore[attr-defined]
        (msg,) = msgs
        body = json.loads(msg["Body"])
        assert body["requestPayload"] == {"chunk": 7}
        assert body["requestContext"]["condition"] == "RetriesExhausted"
        assert body["requestContext"]["approximateInvokeCount"] == 2  # MaximumRetryAttempts=1
        assert body["responsePayload"]["errorType"] == "ValueError"
        assert len(server.log_files("fails")) == 2


COUNTER = (
    "import os, time\n"
    "CALLS = 0\n"
    "def handler(event, context):\n"
    "    global CALLS\n"
    "    CALLS += 1\n"
    "    print('call', CALLS, event.get('tag'))\n"
    "    time.sleep(event.get('sleep', 0))\n"
    "    return {'pid': os.getpid(), 'calls': CALLS, 'version': VERSION}\n"
)


def _counter(server: LocalAWS, version: int = 1, timeout: int = 3) -> None:
    iam, lam = _client(server, "iam"), _client(server, "lambda")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
    lam.create_function(FunctionName="counter", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                        Handler="handler.handler", Timeout=timeout,
                        Code={"ZipFile": _zip(f"VERSION = {version}\n" + COUNTER)})


def _call(server: LocalAWS, **event: Any) -> dict[str, Any]:
    resp = _client(server, "lambda").invoke(FunctionName="counter", Payload=json.dumps(event))  # type: ignore[attr-defined]
    out: dict[str, Any] = json.loads(resp["Payload"].read())
    out["error"] = resp.get("FunctionError")
    return out


def test_given_back_to_back_invocations_then_the_sandbox_is_reused_like_a_warm_lambda(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path) as server:
        _counter(server)
        first, second = _call(server, tag="one"), _call(server, tag="two")
        assert second["pid"] == first["pid"]
        assert (first["calls"], second["calls"]) == (1, 2), "module globals survive, as in a warm start"
        log1, log2 = server.log_files("counter")
        assert "call 1 one" in log1.read_text() and "two" not in log1.read_text()
        assert "call 2 two" in log2.read_text() and "Init: warm" in log2.read_text()

        # New code: never served by the old sandbox.
        zipped = _zip("VERSION = 2\n" + COUNTER)
        _client(server, "lambda").update_function_code(FunctionName="counter", ZipFile=zipped)  # type: ignore[attr-defined]
        third = _call(server)
        assert (third["version"], third["calls"]) == (2, 1)
        assert third["pid"] != first["pid"]


def test_given_a_timeout_then_the_sandbox_is_discarded_and_the_next_call_starts_cold(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path) as server:
        _counter(server, timeout=1)
        warm = _call(server)
        assert _call(server, sleep=5)["errorType"] == "Sandbox.Timedout"
        after = _call(server)
        assert after["error"] is None
        assert after["pid"] != warm["pid"] and after["calls"] == 1


def test_given_cold_mode_then_every_invocation_gets_a_fresh_process(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path, warm=False) as server:
        _counter(server)
        first, second = _call(server), _call(server)
        assert first["pid"] != second["pid"]
        assert (first["calls"], second["calls"]) == (1, 1)


def test_given_one_connection_then_requests_share_it_and_an_unread_body_never_leaks_into_the_next(
        tmp_path: Path) -> None:
    import http.client

    with LocalAWS(state_dir=tmp_path) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/_localaws/stats", body=b"x" * 300_000)  # a body the app never reads
        first = conn.getresponse()
        assert first.status == 200 and first.getheader("Connection") != "close"
        json.loads(first.read())
        sock = conn.sock
        conn.request("HEAD", "/_localaws/stats")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.request("GET", "/_localaws/nothing")
        missing = conn.getresponse()
        assert missing.status == 404 and "stats" in json.loads(missing.read())["error"]
        conn.request("GET", "/_localaws/stats", headers={"Connection": "close"})
        last = conn.getresponse()
        assert last.status == 200 and last.getheader("Connection") == "close"
        assert "requests" in json.loads(last.read())
        assert conn.sock is sock or conn.sock is None  # never reconnected; closed only when asked


REPORTER = (
    "import json, os, tempfile, boto3\n"
    "def handler(event, context):\n"
    "    boto3.client('s3').list_buckets()\n"
    "    tmp = tempfile.gettempdir()\n"
    "    open(os.path.join(tmp, 'mark'), 'w').close()\n"
    "    return {'tmp': tmp, 'key': os.environ['AWS_ACCESS_KEY_ID'], 'pad': 'x' * event.get('pad', 0),\n"
    "            'echo': len(event.get('blob', ''))}\n"
)


def test_the_stats_count_each_functions_requests_and_the_write_log_shows_manifests(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path) as server:
        iam, lam, s3 = _client(server, "iam"), _client(server, "lambda"), _client(server, "s3")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        lam.create_function(FunctionName="reporter", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                            Handler="handler.handler", Timeout=30, Code={"ZipFile": _zip(REPORTER)})
        # Events and results bigger than a pipe's buffer travel whole.
        resp = lam.invoke(FunctionName="reporter",  # type: ignore[attr-defined]
                          Payload=json.dumps({"pad": 2_000_000, "blob": "y" * 500_000}))
        out = json.loads(resp["Payload"].read())
        assert resp.get("FunctionError") is None and len(out["pad"]) == 2_000_000 and out["echo"] == 500_000
        assert out["key"] == "reporter"
        again = json.loads(lam.invoke(FunctionName="reporter", Payload=b"{}")["Payload"].read())  # type: ignore[attr-defined]
        assert again["tmp"] == out["tmp"] and Path(out["tmp"], "mark").exists()  # its own /tmp, kept warm
        s3.create_bucket(Bucket="origin")  # type: ignore[attr-defined]
        s3.put_object(Bucket="origin", Key="ch/360p/live.m3u8", Body=b"#EXTM3U\n")  # type: ignore[attr-defined]
        s3.put_object(Bucket="origin", Key="ch/360p/00000000.m4s", Body=b"\0" * 10)  # type: ignore[attr-defined]

        import urllib.request

        with urllib.request.urlopen(f"{server.endpoint}/_localaws/stats") as r:
            stats = json.loads(r.read())
        with urllib.request.urlopen(f"{server.endpoint}/_localaws/s3-writes?after=0&bucket=origin") as r:
            writes = json.loads(r.read())
        mine = {(x["service"], x["operation"]): x["count"] for x in stats["requests"] if x["caller"] == "reporter"}
        assert mine == {("s3", "ListBuckets"): 2}
        ours = {(x["service"], x["operation"]): x["count"] for x in stats["requests"] if x["caller"] == "test"}
        assert ours[("s3", "PutObject")] == 2 and ours[("lambda", "Invoke")] == 2
        assert stats["invocations"]["reporter"]["invocations"] == 2 and stats["pid"] == server.pid
        assert [(w["key"], w.get("text")) for w in writes["writes"]] == [
            ("ch/360p/live.m3u8", "#EXTM3U\n"), ("ch/360p/00000000.m4s", None)]
    assert not Path(out["tmp"]).exists()  # removed with its sandbox


def test_given_an_idle_mapped_queue_then_the_poller_sleeps_instead_of_polling(tmp_path: Path) -> None:
    with LocalAWS(state_dir=tmp_path) as server:
        iam, lam, sqs = _client(server, "iam"), _client(server, "lambda"), _client(server, "sqs")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
        lam.create_function(FunctionName="counter", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                            Handler="handler.handler", Code={"ZipFile": _zip("VERSION = 1\n" + COUNTER)})
        url = sqs.create_queue(QueueName="q")["QueueUrl"]  # type: ignore[attr-defined]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # type: ignore[attr-defined]
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="counter", BatchSize=1)  # type: ignore[attr-defined]
        sqs.send_message(QueueUrl=url, MessageBody="{}")  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not server.log_files("counter"):
            time.sleep(0.1)
        assert server.log_files("counter"), "the message was delivered"

        import urllib.request

        def polls() -> int:
            with urllib.request.urlopen(f"{server.endpoint}/_localaws/stats") as r:
                return int(json.loads(r.read())["sqs_polls"])

        before = polls()
        time.sleep(3)
        # A timer loop at 0.1 s looked 30 times; an idle poller wakes about once a second at most.
        assert polls() - before <= 8


RECORDER = (
    "import json, time\n"
    "def handler(event, context):\n"
    "    for r in event.get('Records') or [event]:\n"
    "        body = json.loads(r['body']) if 'body' in r else r\n"
    "        print('ran', body.get('tag'))\n"
    "        time.sleep(body.get('sleep', 0))\n"
    "    return {}\n"
)


def _recorder_behind_a_queue(server: LocalAWS) -> tuple[Any, str, Callable[..., None]]:
    """Function "rec" (logs "ran TAG", may sleep) mapped to queue "q": (sqs client, queue url, async event)."""
    iam, lam, sqs = _client(server, "iam"), _client(server, "lambda"), _client(server, "sqs")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]  # type: ignore[attr-defined]
    lam.create_function(FunctionName="rec", Runtime="python3.11", Role=role,  # type: ignore[attr-defined]
                        Handler="handler.handler", Timeout=10, Code={"ZipFile": _zip(RECORDER)})
    url = sqs.create_queue(QueueName="q")["QueueUrl"]  # type: ignore[attr-defined]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # type: ignore[attr-defined]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="rec", BatchSize=1)  # type: ignore[attr-defined]

    def event(tag: str, sleep: float = 0) -> None:
        lam.invoke(FunctionName="rec", InvocationType="Event",  # type: ignore[attr-defined]
                   Payload=json.dumps({"tag": tag, "sleep": sleep}))

    return sqs, url, event


def _ran(server: LocalAWS) -> list[str]:
    """The tags "rec" ran, in order."""
    out = []
    for log in server.log_files("rec"):
        out += [ln.split()[1] for ln in log.read_text().splitlines() if ln.startswith("ran ")]
    return out


def test_given_a_busy_pool_then_a_queued_message_runs_before_async_events_raised_after_it(tmp_path: Path) -> None:
    """A pipeline's second stage (SQS) must not wait behind its first stage's newer arrivals (async)."""
    with LocalAWS(state_dir=tmp_path, workers=1) as server:
        sqs, url, event = _recorder_behind_a_queue(server)

        event("busy", sleep=1.5)  # holds the only worker
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"tag": "message"}))
        for tag in ("later-1", "later-2", "later-3"):
            event(tag)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_ran(server)) < 5:
            time.sleep(0.1)
        assert _ran(server) == ["busy", "message", "later-1", "later-2", "later-3"]


def test_given_a_delayed_message_then_it_queues_from_when_it_is_due_not_from_when_it_was_sent(tmp_path: Path) -> None:
    """A packager's timer (SendMessage with DelaySeconds) is not an event until it is due: an async event
    raised after its send but before it was due is older, and runs first once a worker is free."""
    with LocalAWS(state_dir=tmp_path, workers=1) as server:
        sqs, url, event = _recorder_behind_a_queue(server)

        event("busy", sleep=3.5)  # holds the only worker past the message's due time
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"tag": "timer"}), DelaySeconds=2)
        event("raised-before-due")

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_ran(server)) < 3:
            time.sleep(0.1)
        assert _ran(server) == ["busy", "raised-before-due", "timer"]
