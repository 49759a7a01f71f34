"""`make deploy STAGE=lsdeploy` for real: infra/deploy.sh into LocalStack (host process, no Docker).

The CloudFormation stack from infra/template.yaml (Cdn=none: LocalStack community has no CloudFront;
TableManagement=external: the channel table on the built-in emulator, where AWS_ENDPOINT_URL_DYNAMODB
points), then the real `chalice deploy` (functions, SQS event sources, the REST API from Chalice's
Swagger into LocalStack's API Gateway), then the state-machine wiring. A channel is driven only
through the deployed API Gateway URL: create, start, `slipstream push --api` for 30 s, an ad break,
stop, delete; hls.js plays it live meanwhile, reading the origin bucket the way CloudFront would
serve it. Then a re-deploy updates in place and `make destroy` removes everything.

Runs in the LocalStack stage (`make localstack`); elsewhere it skips, saying why.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import m3u8
import pytest

from chalicelib.media.dash import SCTE35_SCHEME
from chalicelib.media.ladder import TEST_LADDER
from devtools.demo import DirectoryObjectSource, ServerConfig, call_api, serving
from devtools.localaws.deploy import wait_for
from devtools.localstack_executor.launcher import LocalStackSession

pytestmark = [pytest.mark.integration, pytest.mark.localstack]

ROOT = Path(__file__).resolve().parents[3]
STAGE = "lsdeploy"
STACK = f"slipstream-{STAGE}"
API_KEY = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]["environment_variables"][
    "API_KEYS"].split(",")[0]
FUNCTIONS = {f"{STACK}{suffix}" for suffix in ("", "-on_segment_uploaded_queued", "-transcode_chunk",
                                               "-package_channel", "-lifecycle")}
PUSH_SECONDS = 30
CHUNKS = PUSH_SECONDS // 2
WANT = [f"r1/{i:08d}.m4s" for i in range(CHUNKS)]
PLAY_SECONDS = 20
SEGMENT = 2.0  # slipstream push's chunks (--segment-time), the test ladder's segments
BREAK_SECONDS = 6
BREAK_AT = 8.0  # media seconds into the run where the break is requested: the fifth segment
# The latest out-point that still returns on a segment of the run, with a segment to spare for the
# estimate of the run's clock (below): out + 6 s + 2 s <= the last segment's start (28 s).
LATEST_BREAK_AT = PUSH_SECONDS - BREAK_SECONDS - 2 * SEGMENT


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def line(self, prefix: str) -> str:
        """The last line of stdout or stderr starting with prefix ('' when there is none)."""
        found = [ln for ln in (self.stdout + "\n" + self.stderr).splitlines() if ln.startswith(prefix)]
        return found[-1] if found else ""

    def __str__(self) -> str:
        head = f"{' '.join(self.argv)} -> {self.returncode} in {self.seconds:.0f} s"
        return f"{head}\n{self.stdout[-3000:]}\n{self.stderr[-5000:]}"


def make(target: str, env: dict[str, str], timeout: float = 480) -> Run:
    argv = ["make", "--no-print-directory", target, f"STAGE={STAGE}"]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return Run(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def stage_env(aws: dict[str, str], localstack: LocalStackSession) -> dict[str, str]:
    """What a user's shell has for `make deploy STAGE=lsdeploy`: LocalStack's endpoint, and DynamoDB's
    on the built-in emulator (LocalStack community has none offline). No CloudFront endpoint: the
    stage has no CDN (Cdn=none), so nothing may need one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in aws.items() if k != "AWS_ENDPOINT_URL_CLOUDFRONT"})
    env["CONFIRM"] = STACK  # make destroy asks otherwise
    return env


@dataclass
class Deployed:
    run: Run
    api: str  # the deployed API Gateway URL, without the trailing slash
    playback: str  # the stack's PlaybackBaseUrl (the origin bucket, path-style, on LocalStack's S3)
    destroyed: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    steps: dict[str, list[str]] = field(default_factory=dict)  # each make run's step lines, "... (+N s)"

    def note(self, name: str, run: Run) -> None:
        self.timings[name] = run.seconds
        self.steps[name] = [ln for ln in run.stderr.splitlines() if ln.endswith(" s)") and "(+" in ln]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return call_api(self.api, method, path, body, api_key=API_KEY)

    def start(self, channel: str, timeout: float = 90) -> str:
        """POST start once the lifecycle execution has parked the channel (CREATING -> IDLE)."""
        def started() -> str:
            code, status = self.call("GET", f"/channels/{channel}/status")
            assert code == 200 and status["state"] != "ERROR", status
            if status["state"] != "IDLE":
                return ""
            code, body = self.call("POST", f"/channels/{channel}/start")
            assert code in (202, 409), body  # 409: still CREATING (no task token yet)
            return str(body["state"]) if code == 202 else ""

        return str(wait_for(started, timeout=timeout, interval=0.5, what=f"{channel} started"))


def _parse(run: Run) -> tuple[str, str]:
    api = run.line("API:").split(None, 1)[-1].strip().rstrip("/")
    playback = run.line("Playback:").split(None, 1)[-1].strip().removesuffix("/{channel}/master.m3u8")
    return api, playback


def test_a_stack_that_fails_to_create_rolls_back_and_make_deploy_names_the_resource_and_reason(
    stage_env: dict[str, str], boto: Callable[[str], Any]
) -> None:
    """Bad input: the state machine's log group already exists (a leftover of an earlier stack, as
    a retained log group is on AWS), so the stack cannot create it."""
    logs, log_group = boto("logs"), f"/aws/vendedlogs/states/{STACK}-channel"
    logs.create_log_group(logGroupName=log_group)
    try:
        run = make("deploy", stage_env)
    finally:
        logs.delete_log_group(logGroupName=log_group)
    assert run.returncode != 0, run
    error = run.line("deploy: error:")
    assert error.startswith(f"deploy: error: stack {STACK}: StateMachineLogs (AWS::Logs::LogGroup) CREATE_FAILED: "), \
        run
    assert "already exists" in error and error.endswith(f"stack {STACK} is ROLLBACK_COMPLETE"), error
    assert boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    names = {f["FunctionName"] for f in boto("lambda").list_functions()["Functions"]}
    assert not names & FUNCTIONS, "chalice deploy must not run on a failed stack"


@pytest.fixture(scope="module")
def deployed(stage_env: dict[str, str], boto: Callable[[str], Any]) -> Iterator[Deployed]:
    run = make("deploy", stage_env)
    assert run.returncode == 0, run
    api, playback = _parse(run)
    dep = Deployed(run, api, playback)
    dep.note("deploy", run)
    yield dep
    if not dep.destroyed:  # a test failed before test_make_destroy_removes_everything
        make("destroy", stage_env)


def test_make_deploy_says_where_each_service_runs_and_wires_functions_queues_api_and_state_machine(
    deployed: Deployed, aws: dict[str, str], boto: Callable[[str], Any]
) -> None:
    run, endpoint = deployed.run, aws["AWS_ENDPOINT_URL"]
    # The failed creation before left a ROLLBACK_COMPLETE stack: deploy replaced it.
    assert f"stack {STACK} is ROLLBACK_COMPLETE (its creation failed and rolled back)" in run.stderr
    assert (f"LocalStack at {endpoint} runs every service of the stage except: DYNAMODB at "
            f"{aws['AWS_ENDPOINT_URL_DYNAMODB']}; CloudFront: none") in run.stderr, run
    # The table outside the stack (the failed attempt above already created it).
    table_at = re.escape(aws["AWS_ENDPOINT_URL_DYNAMODB"])
    assert re.search(rf"TableManagement=external\): {STACK} (created|exists) at {table_at} \(\+\d+ s\)\n",
                     run.stderr), run
    for step in ("1/3 stateful stack", "2/3 chalice deploy --stage lsdeploy", "3/3 wiring the state machine"):
        assert f"deploy: {step}" in run.stderr
    assert deployed.api.startswith(f"{endpoint}/_aws/execute-api/") and deployed.api.endswith("/api")
    assert deployed.playback == f"{endpoint}/slipstream-lsdeploy-origin-000000000000-us-east-1"

    lam = boto("lambda")
    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"] if f["FunctionName"] in FUNCTIONS}
    assert set(functions) == FUNCTIONS
    for fn in functions.values():
        env = fn["Environment"]["Variables"]
        assert env["TABLE_NAME"] == STACK and env["STAGE"] == STAGE
        assert env["AWS_ENDPOINT_URL_DYNAMODB"] == aws["AWS_ENDPOINT_URL_DYNAMODB"]
        assert env["PLAYBACK_BASE_URL"] == deployed.playback and "DISTRIBUTION_ID" not in env
    queues = {m["EventSourceArn"].rsplit(":", 1)[1]: m["FunctionArn"].rsplit(":", 1)[1]
              for m in lam.list_event_source_mappings()["EventSourceMappings"]
              if m["EventSourceArn"].split(":")[-1].startswith(STACK)}
    assert queues == {f"{STACK}-ingest-events": f"{STACK}-on_segment_uploaded_queued",
                      f"{STACK}-transcode": f"{STACK}-transcode_chunk",
                      f"{STACK}-package": f"{STACK}-package_channel"}
    # Wired: the stack's state machine invokes the function chalice deployed.
    deployed_state = json.loads((ROOT / ".chalice" / "deployed" / f"{STAGE}.json").read_text())
    lifecycle = next(r["lambda_arn"] for r in deployed_state["resources"] if r.get("name") == "lifecycle")
    stack = boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["LifecycleFunctionArn"] == lifecycle
    assert (params["Cdn"], params["TableManagement"]) == ("none", "external")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert lifecycle in boto("stepfunctions").describe_state_machine(
        stateMachineArn=outputs["StateMachineArn"])["definition"]
    assert "DistributionId" not in outputs
    assert boto("dynamodb").describe_table(TableName=STACK)["Table"]["TableStatus"] == "ACTIVE"


def _http(url: str) -> tuple[int, str, dict[str, str]]:
    """GET as a player would: no credentials, plain HTTP."""
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, resp.read().decode(errors="replace"), dict(resp.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, "", {}


def _uris(text: str) -> list[str]:
    return [s.uri for s in m3u8.loads(text).segments] if text else []


def _decoded(url: str) -> tuple[str, int, str]:
    """Every frame of an HLS media playlist decoded by ffmpeg over HTTP, as a player gets it:
    (codec, frames decoded, ffmpeg's errors)."""
    proc = subprocess.run(["ffprobe", "-v", "error", "-count_frames",
                           "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", url],
                          capture_output=True, text=True, timeout=120, check=False)
    streams = json.loads(proc.stdout or "{}").get("streams") or [{}]
    return str(streams[0].get("codec_name", "")), int(streams[0].get("nb_read_frames") or 0), proc.stderr.strip()


def _break_start(deployed: Deployed, cid: str) -> tuple[str, float]:
    """(`start` for POST /ad-breaks, the media second of the run it lands on): BREAK_AT, or the first
    boundary a second ahead of now if the run is already past it, so the break and its return are
    inside the 30 s run whatever the emulator's speed.

    A break is requested for a program date time, and the run's PDT of media t is its availability
    start + t, which ingest fixes from the first chunk (S3's arrival time minus the chunk's end on the
    media clock). The channel status reports the newest chunk's seq and arrival as soon as ingest has it,
    long before a playlist exists (a slow first transcode put the first playlist at 23.7 s once, and a
    break requested 'now' then landed at 26 s of the 30 s run, still open at the stop)."""
    def newest_chunk() -> dict[str, Any] | None:
        code, status = deployed.call("GET", f"/channels/{cid}/status")
        last = status.get("last_segment") if code == 200 else None
        return last if last and last.get("received_at") else None

    last = wait_for(newest_chunk, timeout=60, interval=0.25, what=f"{cid}'s first chunk at ingest")
    media0 = datetime.fromisoformat(str(last["received_at"]).replace("Z", "+00:00")) - timedelta(
        seconds=(int(last["seq"]) + 1) * SEGMENT)
    ahead = (datetime.now(UTC) - media0).total_seconds() + 1.0  # the API refuses starts in the past
    at = max(BREAK_AT, math.ceil(ahead / SEGMENT) * SEGMENT)
    if at > LATEST_BREAK_AT:
        pytest.fail(f"environment too slow: chunk {last['seq']} reached ingest at media {ahead - 1:.1f} s of the "
                    f"{PUSH_SECONDS} s run, after the latest out-point ({LATEST_BREAK_AT:g} s) that lets a "
                    f"{BREAK_SECONDS} s break return before the stop")
    # A second before the boundary: the break snaps to the first segment starting at or after it.
    start = media0 + timedelta(seconds=at - 1.0)
    return start.isoformat().replace("+00:00", "Z"), at


def _player(url: str, screenshot: Path) -> subprocess.Popen[str]:
    """web/tests/player.spec.mjs in Debian's chromium (as tests/integration/browser drives it)."""
    argv = ["node", str(ROOT / "web" / "tests" / "player.spec.mjs"), url, "--play", str(PLAY_SECONDS),
            "--start-timeout", "60", "--screenshot", str(screenshot)]
    return subprocess.Popen(argv, cwd=ROOT / "web", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=180)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"the browser driver printed no report (exit {proc.returncode}): {err[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


@dataclass
class LiveRun:
    channel: str
    push: Run
    report: dict[str, Any]
    ad_break: dict[str, Any]
    playback: dict[str, Any]  # GET /channels/{id}/playback after the stop
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def live(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    """One channel, driven only through the deployed API: create, start, push 30 s (hls.js watching
    from the moment the first playlist is at the origin), a 6 s ad break 8 s into the run's media (later
    only if the run is already past that: see `_break_start`), stop once every chunk is out."""
    for tool in ("node", "ffmpeg"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            pytest.fail(f"{tool} not found -- run: make deps")
    cid, seconds = f"lsd-{uuid.uuid4().hex[:6]}", {}
    t0 = time.monotonic()
    # Input loss off: the dvr playlists are read for exactly the pushed chunks after the push ends, with the
    # channel still running (input loss, on by default, would slate up to 3 slots after the last chunk).
    code, body = deployed.call("POST", "/channels", {"id": cid, "name": "make deploy on LocalStack", "ladder": "test",
                                                     "input_loss_wait": 0})
    assert code == 201, body
    assert deployed.start(cid) in ("STARTING", "RUNNING")
    seconds["create_start"] = time.monotonic() - t0

    work = tmp_path_factory.mktemp("lsdeploy-player")
    # The page and its /api proxy (to the deployed API Gateway URL); /origin serves nothing, so the
    # player must take the API's playback URLs: the stage's origin bucket, as CloudFront would.
    config = ServerConfig(web_root=ROOT / "web", origin=DirectoryObjectSource(work), api_base=deployed.api,
                          api_key=API_KEY)
    argv = [sys.executable, "-m", "slipstream_cli", "push", "--channel", cid, "--api", deployed.api + "/",
            "--api-key", API_KEY, "--duration", str(PUSH_SECONDS), "--size", "320x180", "--quiet", "testsrc"]
    with serving(config) as page:
        t_push = time.monotonic()
        procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
        try:
            start, seconds["break_at_media"] = _break_start(deployed, cid)
            code, ad_break = deployed.call("POST", f"/channels/{cid}/ad-breaks",
                                           {"duration": BREAK_SECONDS, "start": start})
            assert code == 201, ad_break
            # The player opens the page once the channel's master playlist is at the stage's origin:
            # before that it gets 404s, and after three it falls back to the page's own /origin
            # (web/player.js), which here serves nothing. A cold first transcode (a new sandbox per
            # function on 2 cores) can take longer than those three tries.
            wait_for(lambda: _http(f"{deployed.playback}/{cid}/master.m3u8")[0] == 200, timeout=90, interval=0.5,
                     what=f"{cid}/master.m3u8 at the stage's origin")
            seconds["first_playlist"] = time.monotonic() - t_push
            procs.append(_player(f"{page}/player.html?channel={cid}&engine=hlsjs", work / "player.png"))
            out, err = procs[0].communicate(timeout=PUSH_SECONDS + 120)
            push = Run(argv, procs[0].returncode, out, err, time.monotonic() - t_push)
            report = _report(procs[1])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert push.returncode == 0, push
    seconds["push"] = push.seconds

    base = f"{deployed.playback}/{cid}"
    wait_for(lambda: all(_uris(_http(f"{base}/{r}/dvr.m3u8")[1]) == WANT for r in TEST_LADDER.names),
             timeout=180, interval=1, what=f"all {CHUNKS} chunks in every dvr playlist at the origin")
    seconds["drained"] = time.monotonic() - t_push
    t_stop = time.monotonic()
    code, body = deployed.call("POST", f"/channels/{cid}/stop")
    assert code == 202, body
    wait_for(lambda: deployed.call("GET", f"/channels/{cid}")[1].get("state") == "STOPPED", timeout=120,
             interval=1, what=f"{cid} STOPPED (the run's VOD written)")
    seconds["stop"] = time.monotonic() - t_stop
    code, playback = deployed.call("GET", f"/channels/{cid}/playback")
    assert code == 200, playback
    return LiveRun(cid, push, report, ad_break, playback, seconds)


def test_hls_js_plays_the_live_channel_for_20_s_without_a_stall(live: LiveRun, deployed: Deployed) -> None:
    report = live.report
    assert report["ok"], json.dumps({k: report.get(k) for k in ("failures", "errors", "log", "console", "last")})[:4000]
    assert report["wallSeconds"] >= PLAY_SECONDS and report["stalls"] == 0
    assert report["progressed"] >= 0.85 * report["wallSeconds"]
    # The URL the API handed out: the stage's origin, not the page server's fallback.
    assert report["source"] == f"{deployed.playback}/{live.channel}/master.m3u8"
    assert any(m["kind"] == "out" for m in report["markers"]), report["markers"]


def test_the_break_and_every_chunk_are_in_the_runs_vod_hls_and_dash(live: LiveRun, deployed: Deployed) -> None:
    """Stop seals the run: its VOD (own URLs, PLAYLIST-TYPE VOD + ENDLIST, a static MPD) carries every
    chunk and the break; the live URLs stay open for a next run (no ENDLIST until the event ends)."""
    base, brk = f"{deployed.playback}/{live.channel}", live.ad_break
    assert live.playback["vod_hls"] == f"{base}/vod-r1.m3u8" and live.playback["vod_dash"] == f"{base}/vod-r1.mpd"
    code, master, _ = _http(live.playback["vod_hls"])
    assert code == 200 and {p.uri for p in m3u8.loads(master).playlists} == {
        f"{v.name}/vod-r1.m3u8" for v in TEST_LADDER.video}
    for rendition in TEST_LADDER.names:
        code, text, _ = _http(f"{base}/{rendition}/vod-r1.m3u8")
        vod = m3u8.loads(text)
        assert code == 200 and vod.is_endlist and vod.playlist_type == "vod" and _uris(text) == WANT, rendition
        assert f'#EXT-X-DATERANGE:ID="{brk["id"]}"' in text and "SCTE35-OUT=" in text and "SCTE35-IN=" in text, text
        # It returned at its planned end, on a segment of the run: not closed by the stop.
        assert re.search(rf'^#EXT-X-DATERANGE:ID="{re.escape(brk["id"])}",START-DATE="[^"]+",END-DATE="[^"]+",'
                         rf"DURATION={BREAK_SECONDS}\.000,SCTE35-IN=", text, re.M), text
        assert re.search(r"^#EXT-X-CUE-OUT:\d", text, re.M) and "#EXT-X-CUE-IN" in text, text  # scte35_enhanced
        assert sum(1 for s in vod.segments if s.cue_out_start) == 1 and any(s.cue_in for s in vod.segments), text
        live_text = _http(f"{base}/{rendition}/dvr.m3u8")[1]
        assert not m3u8.loads(live_text).is_endlist and _uris(live_text) == WANT
    # The media itself, not only its playlists: every frame of the run decodes from the origin URLs.
    fps = 25  # testsrc's rate (slipstream push), kept by the test ladder
    for video in TEST_LADDER.video:
        assert _decoded(f"{base}/{video.name}/vod-r1.m3u8") == ("h264", PUSH_SECONDS * fps, ""), video.name
    codec, frames, errors = _decoded(f"{base}/{TEST_LADDER.audio.name}/vod-r1.m3u8")
    # AAC: 1024 samples a frame; the chunks are cut on the video's 2 s grid (a frame either way).
    rate = TEST_LADDER.audio.sample_rate
    assert (codec, errors) == ("aac", "") and abs(frames - PUSH_SECONDS * rate / 1024) <= CHUNKS, frames
    code, mpd, _ = _http(live.playback["vod_dash"])
    assert code == 200 and 'type="static"' in mpd and "minimumUpdatePeriod" not in mpd
    assert re.search(rf'<EventStream[^>]*schemeIdUri="{re.escape(SCTE35_SCHEME)}"', mpd), mpd[:3000]
    assert re.search(rf'<Event presentationTime="\d+" duration="{BREAK_SECONDS * 90000}"', mpd), mpd[:3000]
    assert 'type="dynamic"' in _http(f"{base}/manifest.mpd")[1]
    # Segments are immutable, playlists short-lived, as CloudFront's cache policies expect them.
    code, _, seg = _http(f"{base}/{TEST_LADDER.video[0].name}/r1/00000003.m4s")
    assert code == 200 and seg.get("Cache-Control") == "public, max-age=1209600, immutable"


def test_re_running_make_deploy_updates_the_stage_in_place(
    live: LiveRun, deployed: Deployed, stage_env: dict[str, str], boto: Callable[[str], Any]
) -> None:
    lam = boto("lambda")
    before = {name: lam.get_function_configuration(FunctionName=name)["FunctionArn"] for name in FUNCTIONS}
    run = make("deploy", stage_env)
    assert run.returncode == 0, run
    deployed.note("redeploy", run)
    assert _parse(run) == (deployed.api, deployed.playback), "same API, same origin"
    assert "ROLLBACK_COMPLETE" not in run.stderr and "created at" not in run.stderr
    assert {name: lam.get_function_configuration(FunctionName=name)["FunctionArn"] for name in FUNCTIONS} == before
    status = boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
    assert status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), status
    # The channel and its media survived: same table, same buckets.
    code, channel = deployed.call("GET", f"/channels/{live.channel}")
    assert code == 200 and channel["state"] == "STOPPED", channel
    assert _http(live.playback["vod_hls"])[0] == 200


def test_deleting_the_channel_ends_the_event_with_endlist_on_the_live_playlists(
    live: LiveRun, deployed: Deployed
) -> None:
    code, body = deployed.call("DELETE", f"/channels/{live.channel}")
    assert code == 200, body
    base = f"{deployed.playback}/{live.channel}"

    def ended() -> bool:
        return all(m3u8.loads(_http(f"{base}/{r}/live.m3u8")[1]).is_endlist for r in TEST_LADDER.names)

    wait_for(ended, timeout=60, interval=1, what="EXT-X-ENDLIST on every live playlist")
    # The live MPD ends the DASH-IF way (chalicelib/media/dash.py): still dynamic, now with a
    # mediaPresentationDuration and no minimumUpdatePeriod, so players stop polling it.
    mpd = _http(f"{base}/manifest.mpd")[1]
    assert 'type="dynamic"' in mpd and "mediaPresentationDuration=" in mpd and "minimumUpdatePeriod" not in mpd, mpd


def test_make_destroy_removes_everything(
    deployed: Deployed, stage_env: dict[str, str], boto: Callable[[str], Any], live: LiveRun
) -> None:
    run = make("destroy", stage_env)
    deployed.destroyed = True
    deployed.note("destroy", run)
    assert run.returncode == 0, run
    cfn = boto("cloudformation")
    assert not [s for s in cfn.list_stacks()["StackSummaries"]
                if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"]
    assert not {f["FunctionName"] for f in boto("lambda").list_functions()["Functions"]} & FUNCTIONS
    assert not [a for a in boto("apigateway").get_rest_apis()["items"] if a["name"] == "slipstream"]
    assert not [b["Name"] for b in boto("s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{STACK}-")]
    assert STACK not in boto("dynamodb").list_tables()["TableNames"]
    print(f"\nlsdeploy timings (s): {json.dumps({**deployed.timings, **live.seconds}, default=round)}")
    for name, lines in deployed.steps.items():  # where each make run spent its time
        print(f"make {name} steps:", *lines, sep="\n  ")
