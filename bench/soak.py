"""Fault soak: a live channel on the emulated stack for minutes, through every fault a live encoder and a
serverless pipeline meet, watched by hls.js, dash.js and shaka-player in headless Chromium throughout.

1. Cuts a synthetic source (the push helper's own ffmpeg command, testsrc2 + tone, 2 s MPEG-TS chunks)
   ahead of time, so encoding does not compete with the pipeline for CPU.
2. Brings up the demo stack (devtools.demo: emulator with the deployed Lambdas, chalice local for the
   API, the page + origin server), creates the channel through the API.
3. Uploads the chunks on a real-time schedule with faults drawn from a seeded RNG:
   - 5 % never uploaded (slate must stand in),
   - 20 % uploaded twice (an encoder's retry, 0.3-1.5 s later),
   - 20 % out of order (swapped with the next chunk),
   - 5 % of transcodes killed mid-job (SIGKILL to that chunk's ffmpeg: the deployed stack's retry path),
   - one corrupt chunk (random bytes), one truncated chunk (60 % of its bytes),
   - one encoder clock step (every later chunk remuxed 100 s later on the source clock),
   - one stop/start of the channel through the API (the encoder restarts at seq 0: a new run).
4. While it runs, devtools.updates.Watcher checks every published version of the live and DVR
   playlists and the MPD against its predecessor (RFC 8216bis 6.2.1/6.2.2, DASH-IF update rules) and
   every listed URL once; web/tests/soak.mjs keeps the three players playing and samples them.
5. At the end: stops the channel, reads every chunk's record and each run's VOD, accounts for every seq.

Pass (`SoakReport.failures()` empty): per player no stall > 1 s outside the off-air window of the
stop/start and no HTTP error on the origin; the update checker clean; no listed URL missing; every
live playlist updated within 1.5 x TARGETDURATION while the channel was on air; every seq of every run
listed once in its VOD as media or slate, every slate slot for a chunk that was uploaded counted
(late chunk or invalid chunk).

Usage: python -m bench soak                      (10 minutes)
       python -m bench.soak --minutes 2 --seed 7 [--out report.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHANNEL = "soak"
SEGMENT = 2.0
RENDITIONS = ("360p", "240p", "audio")  # the `test` ladder of the demo stage
ENGINES = (("hlsjs", "hls"), ("dashjs", "dash"), ("shaka", "dash"))
STALL_LIMIT = 1.0
CLOCK_STEP = 100.0  # seconds the encoder's clock jumps at the clock-step chunk


# ---- the fault plan -----------------------------------------------------------------------------

@dataclass
class Chunk:
    index: int  # position in the source (file order)
    faults: set[str] = field(default_factory=set)
    run: int = 0  # filled in while uploading
    seq: int = -1
    uploads: int = 0
    killed: int = 0
    uploaded_at: float | None = None  # epoch s of its last upload
    done_at: float | None = None  # transcoded (from its record)
    listed_at: float | None = None  # first seen in 360p/live.m3u8 (media or slate)
    outcome: str = ""


def plan_faults(n: int, seed: int) -> list[Chunk]:
    """Faults per chunk, exact shares (5 % missing, 20 % twice, 20 % out of order, 5 % killed) drawn by a
    seeded RNG. The first 4 chunks are clean (the run and the players start), the single faults sit at
    fixed fractions of the run so a short soak still meets each one, and the chunks around them and the
    last two stay clean (what happens there is the single fault's, not a mix)."""
    rng = random.Random(seed)
    chunks = [Chunk(i) for i in range(n)]
    fixed = {"corrupt": round(n * 0.2), "clock_step": round(n * 0.35), "restart": round(n * 0.55),
             "truncated": round(n * 0.75)}
    for fault, i in fixed.items():
        chunks[i].faults.add(fault)
    quiet = {j for i in fixed.values() for j in (i - 1, i, i + 1)}
    free = [c.index for c in chunks[4:-2] if c.index not in quiet]
    missing = set(rng.sample(free, max(1, round(n * 0.05))))
    for i in missing:
        chunks[i].faults.add("missing")
    rest = [i for i in free if i not in missing]
    # out of order: swapped with the next chunk, which must be uploaded (not missing, not itself swapped)
    pairs = [i for i in rest if i + 1 in rest]
    swapped: set[int] = set()
    for i in rng.sample(pairs, len(pairs)):
        if len(swapped) >= round(n * 0.20):
            break
        if i - 1 in swapped or i + 1 in swapped:
            continue
        swapped.add(i)
        chunks[i].faults.add("swap")
    for i in rng.sample(rest, max(1, round(n * 0.20))):
        chunks[i].faults.add("dup")
    for i in rng.sample(rest, max(1, round(n * 0.05))):
        chunks[i].faults.add("kill")
    return chunks


# ---- source -------------------------------------------------------------------------------------

def make_source(folder: Path, chunks: list[Chunk]) -> list[Path]:
    from bench.latency import make_chunks
    from chalicelib.transcode.ffmpeg import find_binary

    folder.mkdir(parents=True, exist_ok=True)
    files = make_chunks(folder, len(chunks), SEGMENT)
    if len(files) < len(chunks):
        raise RuntimeError(f"the source gave {len(files)} chunks, {len(chunks)} wanted")
    ffmpeg = find_binary("ffmpeg")
    step = next((c.index for c in chunks if "clock_step" in c.faults), None)
    out = []
    for c, f in zip(chunks, files, strict=False):
        if step is not None and c.index >= step:
            shifted = folder / f"step-{f.name}"
            subprocess.run([ffmpeg, "-v", "error", "-y", "-copyts", "-i", str(f), "-map", "0", "-c", "copy",
                            "-muxdelay", "0", "-muxpreload", "0", "-output_ts_offset", f"{CLOCK_STEP:g}",
                            "-f", "mpegts", str(shifted)], check=True, timeout=60)
            f = shifted
        if "corrupt" in c.faults:
            bad = folder / f"corrupt-{f.name}"
            bad.write_bytes(random.Random(c.index).randbytes(f.stat().st_size))
            f = bad
        elif "truncated" in c.faults:
            cut = folder / f"truncated-{f.name}"
            cut.write_bytes(f.read_bytes()[: int(f.stat().st_size * 0.6) + 7])
            f = cut
        out.append(f)
    return out


# ---- the transcode killer -----------------------------------------------------------------------

class Killer(threading.Thread):
    """SIGKILLs the first ffmpeg seen transcoding each targeted chunk (its work dir is
    `slipstream-{channel}-{seq}-...`, see chalicelib.transcode.job), once per target."""

    def __init__(self, channel: str) -> None:
        super().__init__(name="soak-killer", daemon=True)
        self.channel = channel
        self.targets: dict[int, Chunk] = {}
        self.kills: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def aim(self, chunk: Chunk) -> None:
        with self._lock:
            self.targets[chunk.seq] = chunk

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(0.03):
            with self._lock:
                targets = dict(self.targets)
            if not targets:
                continue
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if not argv or not argv[0].endswith(b"ffmpeg"):
                    continue
                text = b" ".join(argv).decode(errors="replace")
                for seq, chunk in targets.items():
                    if f"slipstream-{self.channel}-{seq}-" in text:
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
                            chunk.killed += 1
                            self.kills.append({"seq": seq, "run": chunk.run, "at": time.time()})
                        with self._lock:
                            self.targets.pop(seq, None)


# ---- the report ---------------------------------------------------------------------------------

@dataclass
class SoakReport:
    minutes: float
    seed: int
    chunks: int
    faults: dict[str, int]
    off_air: list[tuple[float, float]]
    players: list[dict[str, Any]]
    violations: list[str]
    missing_urls: list[str]
    manifest_versions: dict[str, int]
    longest_update_wait: dict[str, float]
    target_duration: float
    accounting: dict[str, Any]
    kills: int
    problems: list[str] = field(default_factory=list)  # found while running (API errors, ...)
    delays: list[dict[str, Any]] = field(default_factory=list)  # publish_delays()
    waits: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (s into the run, s) > 1.5 x seg
    plan: list[dict[str, Any]] = field(default_factory=list)  # per chunk: index, run, seq, faults, uploads, killed

    def stalls(self, player: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(stalls > 1 s while on air, stalls that overlap an off-air window)."""
        on: list[dict[str, Any]] = []
        off: list[dict[str, Any]] = []
        for e in player.get("episodes") or ():
            if e["seconds"] <= STALL_LIMIT:
                continue
            lo, hi = e["at"] / 1000, e["at"] / 1000 + e["seconds"]
            (off if any(lo < b and hi > a for a, b in self.off_air) else on).append(e)
        return on, off

    def failures(self) -> list[str]:
        out = list(self.problems)
        for p in self.players:
            name = f"{p.get('engine')}/{p.get('format')}"
            if p.get("started") is None:
                out.append(f"{name}: playback never started")
                continue
            on, _ = self.stalls(p)
            if on:
                out.append(f"{name}: {len(on)} stall(s) > {STALL_LIMIT:g} s on air: "
                           + ", ".join(f"{e['seconds']:.1f} s at t={e['t']:.1f}" for e in on[:5]))
            if p.get("httpErrors"):
                out.append(f"{name}: {len(p['httpErrors'])} HTTP error(s) from the origin, first "
                           f"{p['httpErrors'][0]['status']} {p['httpErrors'][0]['url']}")
            if p.get("failedRequests"):
                out.append(f"{name}: {len(p['failedRequests'])} failed request(s), first {p['failedRequests'][0]}")
            if p.get("driverError"):
                out.append(f"{name}: {p['driverError']}")
        out += [f"update rule: {v}" for v in self.violations[:20]]
        out += [f"listed but missing: {u}" for u in self.missing_urls[:20]]
        # RFC 8216bis 6.2.1 / the issue: a new version with a new segment within 1.5 x TARGETDURATION once a
        # later chunk is ready (+ 0.5 s: the watcher polls every 0.5 s).
        limit = 1.5 * self.target_duration + 0.5
        slow = [d for d in self.delays if d["delay"] > limit]
        if slow:
            out.append(f"{len(slow)} slot(s) listed later than 1.5 x TARGETDURATION after they could be: "
                       + ", ".join(f"run {d['run']} seq {d['seq']} {d['faults']} {d['delay']:.1f} s" for d in slow[:5]))
        out += self.accounting.get("unaccounted", [])
        return out

    def figures(self) -> str:
        lines = [f"soak: {self.minutes:g} min, seed {self.seed}, {self.chunks} chunks, faults {self.faults}, "
                 f"{self.kills} ffmpeg(s) killed"]
        for p in self.players:
            on, off = self.stalls(p)
            worst = max((e["seconds"] for e in p.get("episodes") or ()), default=0.0)
            lines.append(
                f"  {p.get('engine')}/{p.get('format')}: progressed {p.get('progressed', 0):.1f} s in "
                f"{p.get('wall', 0):.1f} s, stall episodes >= 0.25 s: {len(p.get('episodes') or ())} (worst "
                f"{worst:.2f} s), > 1 s on air: {len(on)}, while off air: "
                + (", ".join(f"{e['seconds']:.1f} s" for e in off) or "none")
                + f", HTTP errors {len(p.get('httpErrors') or ())}")
        lines.append(f"  manifests: {sum(self.manifest_versions.values())} versions checked, "
                     f"{len(self.violations)} update-rule violations, {len(self.missing_urls)} listed URLs missing")
        lines.append("  longest wait between two versions on air (a missing chunk waits for a later one): " + ", ".join(
            f"{k} {v:.1f} s" for k, v in sorted(self.longest_update_wait.items())))
        if self.delays:
            worst = sorted(self.delays, key=lambda d: -d["delay"])[:3]
            lines.append(f"  slot listed after it could be (1.5 x TARGETDURATION = {1.5 * self.target_duration:g} s): "
                         f"p50 {sorted(d['delay'] for d in self.delays)[len(self.delays) // 2]:.2f} s, worst "
                         + ", ".join(f"{d['delay']:.2f} s (run {d['run']} seq {d['seq']} {d['faults']})"
                                     for d in worst))
        a = self.accounting
        lines.append(f"  seqs: {a.get('outcomes')}; late chunks counted {a.get('late_counted')}, "
                     f"invalid counted {a.get('invalid_counted')}; unaccounted {len(a.get('unaccounted', []))}")
        windows = ", ".join(f"{hi - lo:.1f} s" for lo, hi in self.off_air)
        lines.append(f"  off air (stop -> the next run listed + 6 s): {windows or 'none'}")
        return "\n".join(lines)


# ---- the run ------------------------------------------------------------------------------------

def _api(stack: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    from devtools.demo import call_api

    return call_api(stack.api_url, method, path, body)


def _wait_state(stack: Any, states: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        _, body = _api(stack, "GET", f"/channels/{stack.channel_id}/status")
        state = body.get("state", "") if isinstance(body, dict) else ""
        if state in states:
            return str(state)
        time.sleep(0.3)
    raise RuntimeError(f"channel did not reach {sorted(states)} within {timeout:.0f} s (last {state!r})")


def run_soak(minutes: float = 10.0, seed: int = 1, work: Path | None = None,
             say: Callable[[str], None] = print) -> SoakReport:
    import boto3

    from devtools import updates
    from devtools.demo import start_channel, start_demo

    work = work or Path(tempfile.mkdtemp(prefix="soak-"))
    n = max(30, round(minutes * 60 / SEGMENT))
    chunks = plan_faults(n, seed)
    say(f"soak: cutting {n} chunks of {SEGMENT:g} s into {work / 'src'}")
    files = make_source(work / "src", chunks)
    say("soak: starting the emulated stack")
    # Input loss on (it is off by default): 1.5 segment durations, the value it was measured with.
    stack = start_demo(channel_id=CHANNEL, push=False, work_dir=work / "stack",
                       create={"name": "Fault soak", "input_loss_wait": 1.5 * SEGMENT})
    env = stack.env
    kw = {"endpoint_url": env.get("AWS_ENDPOINT_URL"), "region_name": env.get("AWS_DEFAULT_REGION"),
          "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID"), "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY")}
    s3 = boto3.client("s3", **kw)
    table = boto3.resource("dynamodb", **kw).Table(env["TABLE_NAME"])
    ingest, origin = env["INGEST_BUCKET"], env["ORIGIN_BUCKET"]
    problems: list[str] = []
    off_air: list[tuple[float, float]] = []
    killer = Killer(CHANNEL)
    killer.start()
    stop_watching = threading.Event()

    def fetch(key: str) -> bytes | None:
        try:
            return bytes(s3.get_object(Bucket=origin, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    def exists(key: str) -> bool:
        try:
            s3.head_object(Bucket=origin, Key=key)
            return True
        except Exception:
            return False

    watcher = updates.Watcher(fetch, CHANNEL, exists=exists,
                              playlists=tuple(f"{r}/{w}.m3u8" for r in RENDITIONS for w in ("live", "dvr")))

    state: dict[str, Any] = {"run": 1, "restart_at": None}
    listed: dict[tuple[int, int], float] = {}  # (run, seq) -> first seen in 360p/live.m3u8

    def note_listed() -> None:
        text = watcher.last("360p/live.m3u8") or ""
        now = time.time()
        for line in text.splitlines():
            if line.startswith("r") and line.endswith(".m4s") and "/" in line:
                folder, name = line.split("/", 1)
                with contextlib.suppress(ValueError):
                    listed.setdefault((int(folder[1:]), int(name.split(".")[0])), now)

    def watch() -> None:
        while not stop_watching.wait(0.5):
            try:
                watcher.poll()
                note_listed()
            except Exception as e:  # a manifest that does not even parse is a finding, not a crash
                problems.append(f"watcher: {type(e).__name__}: {e}")
                if len(problems) > 50:
                    return
            began = state["restart_at"]
            if began is not None and f"r{state['run']}/" in (watcher.last("360p/live.m3u8") or ""):
                # Off air from the stop until the next run is listed, plus the players' reload period and
                # their first fetches of the new run.
                off_air.append((float(began), time.time() + 3 * SEGMENT))
                state["restart_at"] = None

    watch_thread = threading.Thread(target=watch, name="soak-watcher", daemon=True)
    pool = ThreadPoolExecutor(max_workers=4)
    report_path = work / "players.json"
    player_log = open(work / "players.log", "w")  # noqa: SIM115 -- the players' stderr, closed below
    procs: list[subprocess.Popen[str]] = []

    def start_players(seconds: float) -> None:
        deadline = time.monotonic() + 120
        while fetch(f"{CHANNEL}/master.m3u8") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        watch_thread.start()
        urls = [stack.player_url(fmt) + f"&engine={engine}" for engine, fmt in ENGINES]
        procs.append(subprocess.Popen(
            ["node", str(REPO / "web" / "tests" / "soak.mjs"), "--seconds", f"{seconds:.0f}",
             "--out", str(report_path), *urls],
            cwd=REPO / "web", stdout=subprocess.DEVNULL, stderr=player_log, text=True))

    try:
        def put(c: Chunk, delay: float = 0.0) -> None:
            if delay:
                time.sleep(delay)
            try:
                s3.put_object(Bucket=ingest, Key=f"{CHANNEL}/{c.seq:08d}.ts", Body=files[c.index].read_bytes(),
                              ContentType="video/mp2t")
                c.uploads += 1
                c.uploaded_at = time.time()
            except Exception as e:
                problems.append(f"upload of chunk {c.index} (run {c.run} seq {c.seq}) failed: {e}")

        run, seq = 1, 0
        base = time.monotonic()
        t0 = time.time()
        held: Chunk | None = None  # a swapped chunk waits for its successor
        for c in chunks:
            if "restart" in c.faults:
                say(f"soak: stop/start before chunk {c.index}")
                state["restart_at"], state["run"] = time.time(), run + 1
                status, body = _api(stack, "POST", f"/channels/{CHANNEL}/stop")
                if status >= 300:
                    problems.append(f"stop -> {status} {body}")
                _wait_state(stack, {"STOPPED"}, 180)
                start_channel(stack.api_url, CHANNEL, stack.children)
                _wait_state(stack, {"RUNNING", "STARTING"}, 120)
                run, seq = run + 1, 0
                base = time.monotonic() - c.index * SEGMENT  # the encoder restarts now
            due = base + (c.index + 1) * SEGMENT  # a chunk is uploaded when the encoder closes it
            time.sleep(max(0.0, due - time.monotonic()))
            c.run, c.seq = run, seq
            seq += 1
            if c.index == 3:
                say("soak: starting the players once the first playlist is out")
                threading.Thread(target=start_players, args=(len(chunks) * SEGMENT + 600,),
                                 name="soak-players", daemon=True).start()
            if c.index % 30 == 0:
                say(f"soak: chunk {c.index}/{n} (run {run}), {len(killer.kills)} kills, "
                    f"{len(watcher.violations)} violations, {len(watcher.missing)} missing")
            if "missing" in c.faults:
                continue
            if "kill" in c.faults:
                killer.aim(c)
            if "swap" in c.faults and held is None:
                held = c
                continue
            pool.submit(put, c)
            if "dup" in c.faults:
                pool.submit(put, c, random.Random(c.index).uniform(0.3, 1.5))
            if held is not None:
                pool.submit(put, held, 0.05)
                if "dup" in held.faults:
                    pool.submit(put, held, random.Random(held.index).uniform(0.3, 1.5))
                held = None
        if held is not None:
            pool.submit(put, held)
        pool.shutdown(wait=True)
        encoder_done = time.time()
        # The encoder has stopped: the players have the last chunks in their buffers (about 3 segments
        # behind the edge). Stop watching them before they play out the end of the stream.
        time.sleep(SEGMENT)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        time.sleep(SEGMENT)  # the last chunks through the pipeline
        stop_watching.set()
        if watch_thread.is_alive():
            watch_thread.join(timeout=30)
        watcher.poll()
        note_listed()
        for c in chunks:
            c.listed_at = listed.get((c.run, c.seq))
        if state["restart_at"] is not None:
            problems.append("the run after the restart never got a segment listed in 360p/live.m3u8")
            off_air.append((float(state["restart_at"]), time.time()))
        players = json.loads(report_path.read_text()).get("players", []) if report_path.exists() else []
        if not players:
            problems.append(f"the players' report is missing (see {work / 'players.log'})")
        say("soak: stopping the channel (the last run becomes VOD)")
        status, body = _api(stack, "POST", f"/channels/{CHANNEL}/stop")
        if status >= 300:
            problems.append(f"final stop -> {status} {body}")
        _wait_state(stack, {"STOPPED"}, 180)
        accounting = account(chunks, table, fetch, run)
        delays = publish_delays(chunks, off_air)
        target = _target_duration(watcher.last("360p/live.m3u8") or "")
        # On air: from the first playlist until the encoder's last upload (then nothing new can come).
        quiet = [*off_air, (encoder_done, float("inf"))]
        live = [f"{r}/live.m3u8" for r in RENDITIONS] + ["manifest.mpd"]
        longest = {rel: watcher.longest_wait(rel, quiet) for rel in live}
        waits = {rel: [(round(at - t0, 1), round(sec, 2)) for at, sec in watcher.intervals.get(f"{CHANNEL}/{rel}", [])
                       if sec > 1.5 * SEGMENT] for rel in live}
        faults = Counter(f for c in chunks for f in c.faults)
        return SoakReport(minutes=minutes, seed=seed, chunks=n, faults=dict(sorted(faults.items())), off_air=off_air,
                          players=players, violations=list(watcher.violations), missing_urls=list(watcher.missing),
                          manifest_versions=dict(watcher.versions), longest_update_wait=longest,
                          target_duration=target, accounting=accounting, kills=len(killer.kills), problems=problems,
                          delays=delays, waits=waits,
                          plan=[{"index": c.index, "run": c.run, "seq": c.seq, "faults": sorted(c.faults),
                                 "uploads": c.uploads, "killed": c.killed, "uploaded_at": c.uploaded_at,
                                 "done_at": c.done_at, "listed_at": c.listed_at, "outcome": c.outcome} for c in chunks])
    finally:
        stop_watching.set()
        killer.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        player_log.close()
        stack.stop()


def _target_duration(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            return float(line.split(":", 1)[1])
    return SEGMENT


def publish_delays(chunks: list[Chunk], off_air: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """How long each slot waited to be listed once it could be: from the moment the previous slot was
    listed and some chunk at or after this slot was transcoded ("a later chunk is ready"), until this
    slot appeared in the live playlist (as media or slate). The run's first slot and slots that became
    due while off air are left out."""
    out = []
    by_run: dict[int, list[Chunk]] = {}
    for c in chunks:
        if c.run:
            by_run.setdefault(c.run, []).append(c)
    for slots in by_run.values():
        slots.sort(key=lambda c: c.seq)
        for i, c in enumerate(slots):
            if i == 0 or c.listed_at is None or slots[i - 1].listed_at is None:
                continue
            ready = [x.done_at for x in slots[i:] if x.done_at is not None]
            if not ready:
                continue
            since = max(float(slots[i - 1].listed_at or 0), min(ready))
            if any(lo <= since <= hi for lo, hi in off_air):
                continue
            out.append({"index": c.index, "run": c.run, "seq": c.seq, "faults": sorted(c.faults),
                        "outcome": c.outcome, "delay": round(c.listed_at - since, 2)})
    return out


def account(chunks: list[Chunk], table: Any, fetch: Callable[[str], bytes | None], runs: int) -> dict[str, Any]:
    """Every seq of every run: listed once in the run's VOD (each rendition), as media or as slate; a
    slate slot for a chunk that was uploaded is a late chunk (flagged, counted) or an invalid one."""
    import m3u8
    from boto3.dynamodb.conditions import Key

    unaccounted: list[str] = []
    outcomes: Counter[str] = Counter()
    late = invalid = 0
    by_slot = {(c.run, c.seq): c for c in chunks if c.run}
    for rn in range(1, runs + 1):
        items: dict[int, dict[str, Any]] = {}
        cond = Key("pk").eq(f"CH#{CHANNEL}") & Key("sk").begins_with(f"SEG#{rn:06d}#")
        resp = table.query(KeyConditionExpression=cond)
        while True:
            for it in resp["Items"]:
                items[int(it["seq"])] = it
            if "LastEvaluatedKey" not in resp:
                break
            resp = table.query(KeyConditionExpression=cond, ExclusiveStartKey=resp["LastEvaluatedKey"])
        seqs = sorted(s for (r, s) in by_slot if r == rn)
        for rendition in RENDITIONS:
            body = fetch(f"{CHANNEL}/{rendition}/vod-r{rn}.m3u8")
            if body is None:
                unaccounted.append(f"run {rn}: no VOD playlist for {rendition}")
                continue
            listed = [int(Path(s.uri).stem) for s in m3u8.loads(body.decode()).segments]
            if len(set(listed)) != len(listed):
                unaccounted.append(f"run {rn} {rendition}: a seq is listed twice in the VOD")
            # the encoder's last chunk of a run may still be in flight at the stop: it may be dropped
            want = [s for s in seqs if s <= max(listed, default=-1)]
            gone = sorted(set(want) - set(listed))
            if gone:
                unaccounted.append(f"run {rn} {rendition}: seqs {gone[:10]} never listed")
        for s in seqs:
            c = by_slot[(rn, s)]
            it = items.get(s)
            if it is not None and it.get("done_at"):
                c.done_at = datetime.fromisoformat(str(it["done_at"]).replace("Z", "+00:00")).timestamp()
            if it is None:
                if s == seqs[-1] and c.uploads:
                    # uploaded just before the stop, ingested after it: refused ("channel is STOPPING"), counted
                    # as a rejected chunk
                    c.outcome = "rejected: arrived as the run stopped"
                    outcomes[c.outcome] += 1
                else:
                    unaccounted.append(f"run {rn} seq {s} (chunk {c.index}, {sorted(c.faults)}): no record")
                continue
            fill = str(it.get("fill") or "")
            if fill == "slate":
                why = str(it.get("slate_reason") or "")
                if c.uploads and it.get("status") == "invalid":
                    invalid += 1
                    c.outcome = "slate: invalid chunk"
                    outcomes[c.outcome] += 1
                elif c.uploads and it.get("late"):
                    late += 1
                    c.outcome = "slate: late chunk dropped"
                    outcomes[c.outcome] += 1
                elif not c.uploads:
                    c.outcome = "slate: never uploaded"
                    outcomes[c.outcome] += 1
                elif why == "between runs" and s == seqs[-1]:
                    # Uploaded as the run stopped, refused ("channel is STOPPING", counted): its slot is the
                    # first of the slate that bridges the restart.
                    c.outcome = "rejected: arrived as the run stopped (its slot bridges the restart)"
                    outcomes[c.outcome] += 1
                else:
                    c.outcome = f"slate: {why}"
                    outcomes[c.outcome] += 1
                    unaccounted.append(f"run {rn} seq {s} (chunk {c.index}, {sorted(c.faults)}): uploaded and "
                                       f"slated ({why}) but neither late nor invalid")
            elif fill == "media" or it.get("done_at"):
                c.outcome = "media"
                outcomes[c.outcome] += 1
                if "missing" in c.faults:
                    unaccounted.append(f"run {rn} seq {s}: media for a chunk never uploaded")
            else:
                c.outcome = "never published"
                outcomes[c.outcome] += 1
                if s < max(items, default=-1):
                    unaccounted.append(f"run {rn} seq {s} (chunk {c.index}, {sorted(c.faults)}): "
                                       "neither media nor slate")
    meta = table.get_item(Key={"pk": f"CH#{CHANNEL}", "sk": "META"}).get("Item") or {}
    counted = int(meta.get("late_chunks", 0))
    if counted < late:
        unaccounted.append(f"{late} late chunks flagged, the channel counts {counted}")
    return {"outcomes": dict(sorted(outcomes.items())), "late_counted": counted, "invalid_counted": invalid,
            "unaccounted": unaccounted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the whole report as JSON")
    parser.add_argument("--keep", type=Path, help="work directory (kept): source chunks, stack logs, players")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else [])
    report = run_soak(args.minutes, args.seed, args.keep)
    print(report.figures())
    if args.out:
        args.out.write_text(json.dumps(asdict(report), indent=1, default=str))
    failures = report.failures()
    for f in failures:
        print(f"FAIL {f}")
    print("soak: PASS" if not failures else f"soak: FAIL ({len(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
