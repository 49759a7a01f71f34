"""The channel lifecycle for real: the API in-process, the ASL executed by the emulator's Step
Functions interpreter, the `lifecycle` Lambda run by the emulator, all against one endpoint.

create -> IDLE (the execution parked) -> start -> RUNNING -> watchdog marks the input gap ->
ad break -> stop -> live-to-VOD -> STOPPED -> delete (execution ends). The pipeline parts of the
full path (push, markers in manifests, VOD playlist contents) belong to the lead's assembly.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:IAMAuthorizer")]

ROOT = Path(__file__).resolve().parents[1].parent
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
KEY = CONFIG["stages"]["local"]["environment_variables"]["API_KEYS"].split(",")[0]


@pytest.fixture
def api(deployed: Any) -> Iterator[Callable[..., Any]]:
    from app import app
    from chalicelib import root

    root.reset()
    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:

        def call(method: str, path: str, body: Any = None) -> Any:
            data = b"" if body is None else json.dumps(body).encode()
            resp = client.http.request(method, path, body=data,
                                       headers={"x-api-key": KEY, "content-type": "application/json"})
            return resp.status_code, json.loads(resp.body or b"null")

        yield call
    root.reset()


def test_lifecycle_runs_through_the_real_state_machine(
    api: Callable[..., Any], deployed: Any, boto: Callable[[str], Any], wait_for: Callable[..., Any]
) -> None:
    cid = f"e2e-{uuid.uuid4().hex[:8]}"

    def state_is(*wanted: str) -> Any:
        code, body = api("GET", f"/channels/{cid}/status")
        assert code == 200, body
        if body["state"] == "ERROR" and "ERROR" not in wanted:
            raise AssertionError(f"channel failed: {body['errors']}")
        return body if body["state"] in wanted else None

    code, body = api("POST", "/channels", {"id": cid, "name": "lifecycle e2e"})
    assert code == 201, body
    wait_for(lambda: state_is("IDLE"), timeout=60, what=f"{cid} IDLE (execution parked)")

    code, body = api("POST", f"/channels/{cid}/start")
    assert code == 202, body
    running = wait_for(lambda: state_is("RUNNING"), timeout=60, what=f"{cid} RUNNING")
    assert running["started_at"]

    # No chunk arrives: after the gap threshold, the next watchdog tick marks the gap.
    tick = int(deployed.substitutions["WatchdogIntervalSeconds"])
    gap = wait_for(lambda: (s := state_is("RUNNING")) and s["input_lost_since"] and s,
                   timeout=3 * tick + 30, what="watchdog marks the input gap")
    assert gap["input_lost_since"] == running["started_at"]

    code, brk = api("POST", f"/channels/{cid}/ad-breaks", {"duration": 30})
    assert code == 201, brk
    assert brk["phase"] == "active"

    started = time.monotonic()
    code, body = api("POST", f"/channels/{cid}/stop")
    assert code == 202, body
    wait_for(lambda: state_is("STOPPED"), timeout=90, what=f"{cid} STOPPED (VOD finalised)")
    # The stop was delivered to the waiting task, not picked up by a later watchdog tick.
    assert time.monotonic() - started < 60

    code, body = api("DELETE", f"/channels/{cid}")
    assert code == 200, body
    sfn = boto("stepfunctions")
    arns = [e["executionArn"] for e in sfn.list_executions(stateMachineArn=deployed.state_machine_arn)["executions"]
            if e["name"].startswith(f"{cid}-")]
    assert len(arns) == 1
    wait_for(lambda: sfn.describe_execution(executionArn=arns[0])["status"] == "SUCCEEDED",
             timeout=60, what="the execution ends after delete")


def _origin(boto: Callable[[str], Any], bucket: str, key: str) -> str:
    try:
        return str(boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    except boto("s3").exceptions.NoSuchKey:
        return ""


def test_create_start_push_ad_break_markers_stop_vod(
    api: Callable[..., Any], deployed: Any, boto: Callable[[str], Any], wait_for: Callable[..., Any]
) -> None:
    """The whole path an operator drives: API -> state machine -> encoder push -> pipeline ->
    SCTE-35 markers in HLS and DASH -> stop -> the run's VOD (ENDLIST playlists, a static MPD) while
    the live playlists stay open for the next run."""
    import argparse

    import m3u8

    from chalicelib.media.ladder import TEST_LADDER
    from slipstream_cli import push

    cid = f"e2e-live-{uuid.uuid4().hex[:6]}"
    seconds, chunks = 16, 8
    # Input loss off: this test reads every playlist's exact listing once the push is over, with the channel
    # still running (input loss, on by default, would slate up to 3 slots after the encoder's last chunk).
    code, body = api("POST", "/channels", {"id": cid, "ladder": "test", "input_loss_wait": 0})
    assert code == 201, body
    wait_for(lambda: api("GET", f"/channels/{cid}")[1]["state"] == "IDLE", timeout=60, what="IDLE")
    assert api("POST", f"/channels/{cid}/start")[0] == 202
    wait_for(lambda: api("GET", f"/channels/{cid}")[1]["state"] == "RUNNING", timeout=60, what="RUNNING")

    code, brk = api("POST", f"/channels/{cid}/ad-breaks", {"duration": 4, "id": "brk-e2e"})
    assert code == 201, brk

    parser = argparse.ArgumentParser()
    push.add_parser(parser.add_subparsers())
    args = parser.parse_args(["push", "--channel", cid, "--bucket", deployed.ingest_bucket, "--size", "320x180",
                              "--quiet", "--duration", str(seconds), "--no-realtime", "testsrc"])
    assert push.run(args) == 0

    renditions = [v.name for v in TEST_LADDER.video]
    want = [f"r1/{i:08d}.m4s" for i in range(chunks)]

    def listed() -> bool:
        return all([s.uri for s in m3u8.loads(_origin(boto, deployed.origin_bucket, f"{cid}/{r}/dvr.m3u8")).segments]
                   == want for r in renditions)

    wait_for(listed, timeout=600, interval=2, what=f"{chunks} segments in every dvr playlist")
    dvr = _origin(boto, deployed.origin_bucket, f"{cid}/{renditions[0]}/dvr.m3u8")
    assert "SCTE35-OUT" in dvr or "#EXT-X-CUE-OUT" in dvr, dvr
    assert "urn:scte:scte35" in _origin(boto, deployed.origin_bucket, f"{cid}/manifest.mpd")

    status = api("GET", f"/channels/{cid}/status")[1]
    assert status["last_segment"] and status["last_segment"]["seq"] == chunks - 1

    assert api("POST", f"/channels/{cid}/stop")[0] == 202
    wait_for(lambda: api("GET", f"/channels/{cid}")[1]["state"] == "STOPPED", timeout=120, what="STOPPED")
    for r in renditions:
        vod = m3u8.loads(_origin(boto, deployed.origin_bucket, f"{cid}/{r}/vod-r1.m3u8"))
        assert vod.is_endlist and vod.playlist_type == "vod" and [s.uri for s in vod.segments] == want
        live = m3u8.loads(_origin(boto, deployed.origin_bucket, f"{cid}/{r}/dvr.m3u8"))
        assert not live.is_endlist and [s.uri for s in live.segments] == want
    assert 'type="static"' in _origin(boto, deployed.origin_bucket, f"{cid}/vod-r1.mpd")
    assert 'type="dynamic"' in _origin(boto, deployed.origin_bucket, f"{cid}/manifest.mpd")
    playback = api("GET", f"/channels/{cid}/playback")[1]
    assert playback["vod_hls"].endswith(f"/{cid}/vod-r1.m3u8")
