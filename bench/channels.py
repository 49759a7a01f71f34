"""Live channels on one machine: how many keep real time on the emulated stack, and where the CPU goes.

For each N (default 1, 2, 4) a fresh emulator (devtools.localaws: real Lambdas, real ffmpeg, SQS,
DynamoDB, S3) is started and the app deployed; N channels on the `test` ladder then ingest pre-cut
2 s chunks on a real-time schedule (channel c uploads chunk i at (i + 1 + c / N) x chunk duration,
like N encoders that did not start in the same instant) for `--seconds` (default 120). Reported per N:
- listed: the share of chunks listed in every playlist (each rendition's live.m3u8 and the MPD)
  within one chunk duration of their upload completing, and p50/p95/max of upload -> listed. The
  first chunk of each channel (cold start, first publish) is reported apart;
- CPU seconds over the run, from /proc: emulator (the server process: moto, the Lambda executor, the
  SQS poller), Lambda Python (the sandbox interpreters), ffmpeg (the sandboxes' children), other
  (the rest of the machine: this bench's own process, kernel threads such as writeback, anything
  else running), and the target ratio (emulator + Lambda Python) / ffmpeg <= 0.5;
- the pipeline's requests per chunk by service and operation, from the emulator's own count
  (GET /_localaws/stats; the bench signs with its own access key, so its uploads are not counted),
  with the server CPU each operation cost.
"Listed" times come from the emulator's write log (GET /_localaws/s3-writes): the instant each
playlist version was stored, read without polling S3, so watching costs the stack almost nothing.

- the emulator's queueing: how long background jobs waited for a Lambda worker, by source kind
  (async events, SQS batches; from GET /_localaws/stats).
`--trace DIR` keeps, per N, the emulator's job trace (jobs-N.jsonl: function, event time, queued,
started, ended, the S3 keys or SQS bodies it ran; LOCALAWS_TRACE) and each chunk's upload and listed
times (chunks-N.json), to find where a slow chunk waited.

Usage: python -m bench channels   or   python -m bench.channels [--channels 1,2,4] [--seconds 120] [--json]
Run it alone (flock /tmp/slipstream-heavy.lock ...): anything else on the machine shows up in "other".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5  # (emulator + Lambda Python CPU) / ffmpeg CPU
BENCH_KEY = "bench"  # the access key the bench signs with; each Lambda signs with its function's name
SERVICES = ("s3", "dynamodb", "sqs")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- what is listed when (pure: tested on small inputs) -------------------------------------------
def hls_upto(text: str) -> int:
    """How many leading seqs a media playlist lists: its last segment's number + 1 (0 if none)."""
    uris = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not uris:
        return 0
    m = re.search(r"(\d+)\.[A-Za-z0-9]+$", uris[-1].split("?", 1)[0])
    return int(m.group(1)) + 1 if m else 0


def mpd_upto(text: str) -> int:
    """How many leading seqs the MPD lists: startNumber + the S entries (with @r) of its last
    Period's first SegmentTimeline (bench.latency counts the same way, for one Period)."""
    from bench.latency import _mpd_count

    periods = re.split(r"<Period\b", text)
    return _mpd_count(periods[-1] if len(periods) > 1 else text)


class Listings:
    """Feeds on object writes ({"time", "key", "text"}) and notes, per channel, when each seq became
    listed in *all* of its playlists (every rendition's live.m3u8 and manifest.mpd)."""

    def __init__(self, channels: Iterable[str], renditions: Iterable[str]) -> None:
        self._upto: dict[str, dict[str, int]] = {}
        for ch in channels:
            keys = [f"{ch}/{r}/live.m3u8" for r in renditions] + [f"{ch}/manifest.mpd"]
            self._upto[ch] = dict.fromkeys(keys, 0)
        self.listed_at: dict[str, dict[int, float]] = {ch: {} for ch in self._upto}

    def feed(self, writes: Iterable[Mapping[str, Any]]) -> None:
        for w in writes:
            key = str(w.get("key", ""))
            ch = key.split("/", 1)[0]
            upto = self._upto.get(ch)
            if upto is None or key not in upto or "text" not in w:
                continue
            text = str(w["text"])
            upto[key] = mpd_upto(text) if key.endswith(".mpd") else hls_upto(text)
            everywhere = min(upto.values())
            listed = self.listed_at[ch]
            for seq in range(everywhere):
                listed.setdefault(seq, float(w["time"]))


def percentile(values: list[float], q: float) -> float:
    """Nearest rank (every reported number was observed)."""
    from bench.latency import percentile as nearest_rank

    return nearest_rank(values, q)


def latency_summary(uploaded: Mapping[tuple[str, int], float], listed: Mapping[str, Mapping[int, float]],
                    segment_time: float) -> dict[str, Any]:
    """upload -> listed over every chunk but each channel's first; a chunk never listed counts as
    late (and in `missing`), never as fast."""
    warm, first, missing, late = [], [], 0, 0
    for (ch, seq), t_up in uploaded.items():
        t = listed.get(ch, {}).get(seq)
        if t is None:
            missing += 1
            if seq > 0:
                late += 1
            continue
        lat = max(0.0, t - t_up)
        if seq == 0:
            first.append(lat)
            continue
        warm.append(lat)
        late += lat > segment_time
    n = sum(1 for (_, seq) in uploaded if seq > 0)
    # A missing chunk is worse than any listed one: it ranks above them all in the percentiles.
    ranked = warm + [float("inf")] * (n - len(warm))
    return {
        "chunks": len(uploaded), "missing": missing,
        "within_chunk": (n - late) / n if n else float("nan"),
        "p50_s": percentile(ranked, 50), "p95_s": percentile(ranked, 95),
        "max_s": max(ranked) if ranked else float("nan"),
        "first_chunk_max_s": max(first) if first else float("nan"),
    }


# ---- CPU from /proc --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcTimes:
    """CPU seconds of one process: its own (all threads) and its waited-for children's."""

    pid: int
    ppid: int
    role: str  # "emulator" | "sandbox" | "child"
    own: float
    children: float


def parse_stat(stat: str) -> tuple[str, int, float, float]:
    """(command name, ppid, own CPU-s, reaped children's CPU-s) from a /proc/PID/stat line."""
    head, _, tail = stat.rpartition(")")
    fields = tail.split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return head.partition("(")[2], ppid, (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def machine_busy() -> float:
    """CPU-s the whole machine spent not idle (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / CLK_TCK


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def processes() -> dict[int, tuple[str, int, float, float]]:
    """Every process: pid -> parse_stat()."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    out[int(entry)] = parse_stat(f.read())
            except (OSError, ValueError, IndexError):
                continue
    return out


def tree(server_pid: int, procs: Mapping[int, tuple[str, int, float, float]]) -> dict[int, ProcTimes]:
    """The server and everything below it, with roles: sandboxes run devtools' _runner.py."""
    kids: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out: dict[int, ProcTimes] = {}
    if server_pid in procs:
        _, ppid, own, ch = procs[server_pid]
        out[server_pid] = ProcTimes(server_pid, ppid, "emulator", own, ch)
    todo = list(kids.get(server_pid, []))
    while todo:
        pid = todo.pop()
        _, ppid, own, ch = procs[pid]
        role = "child"
        if ppid == server_pid:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    role = "sandbox" if b"_runner.py" in f.read() else "child"
            except OSError:
                continue
        out[pid] = ProcTimes(pid, ppid, role, own, ch)
        todo.extend(kids.get(pid, []))
    return out


def cpu_split(before: Mapping[int, ProcTimes], seen: Mapping[int, ProcTimes],
              alive_at_end: Iterable[int]) -> dict[str, float]:
    """CPU-s per bucket between `before` (the tree at the start) and `seen` (every pid's last sample).

    A sandbox's own time is Lambda Python, its reaped children's (ffmpeg) is ffmpeg; a child still
    running is counted from its own sample until it is reaped into its parent's."""
    alive = set(alive_at_end)
    emulator = python = media = 0.0
    for pid, p in seen.items():
        b = before.get(pid)
        if p.role == "emulator":
            emulator += p.own - (b.own if b else 0.0)
        elif p.role == "sandbox":
            python += p.own - (b.own if b else 0.0)
            media += p.children - (b.children if b else 0.0)
        elif pid in alive:
            media += p.own - (b.own if b else 0.0)
        elif b is not None:  # ran at the start, reaped since: its full time is in the parent's
            media -= b.own
    return {"emulator": emulator, "lambda_python": python, "ffmpeg": media}


class CpuSampler(threading.Thread):
    """Samples the server's process tree every `interval` s, keeping each pid's last values (a
    sandbox that exits mid-run keeps what it had used)."""

    def __init__(self, server_pid: int, interval: float = 0.5) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.server_pid, self.interval = server_pid, interval
        self.all0 = processes()
        self.before = tree(server_pid, self.all0)
        self.seen: dict[int, ProcTimes] = dict(self.before)
        self.alive: set[int] = set(self.before)
        self.machine0, self.self0 = machine_busy(), self_cpu()
        self.stop_event = threading.Event()
        self.others: list[tuple[str, float]] = []  # the busiest processes outside the stack

    def sample(self) -> dict[int, tuple[str, int, float, float]]:
        procs = processes()
        now = tree(self.server_pid, procs)
        self.seen.update(now)
        self.alive = set(now)
        return procs

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def finish(self) -> dict[str, float]:
        self.stop_event.set()
        self.join()
        procs = self.sample()
        mine = {*self.seen, os.getpid()}
        busy = [(f"{name}[{pid}]", own - (self.all0[pid][2] if pid in self.all0 else 0.0))
                for pid, (name, _, own, _) in procs.items() if pid not in mine]
        self.others = sorted((b for b in busy if b[1] >= 0.5), key=lambda b: -b[1])[:4]
        split = cpu_split(self.before, self.seen, self.alive)
        machine = machine_busy() - self.machine0
        bench = self_cpu() - self.self0
        rest = machine - sum(split.values()) - bench
        return {**split, "other": bench + rest, "other_bench": bench, "other_rest": rest, "machine": machine}


# ---- requests, from the emulator's count ----------------------------------------------------------
def request_delta(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]],
                  callers: Iterable[str]) -> dict[tuple[str, str], dict[str, float]]:
    """(service, operation) -> {count, errors, cpu_s} of `callers` between two /_localaws/stats reads."""
    wanted = set(callers)
    base: dict[tuple[str, str], dict[str, float]] = {}
    for r in before:
        if r["caller"] in wanted:
            b = base.setdefault((r["service"], r["operation"]), {"count": 0.0, "errors": 0.0, "cpu_s": 0.0})
            for k in b:
                b[k] += float(r[k])
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in after:
        if r["caller"] not in wanted:
            continue
        d = out.setdefault((r["service"], r["operation"]), {"count": 0.0, "errors": 0.0, "cpu_s": 0.0})
        for k in d:
            d[k] += float(r[k])
    for key, d in out.items():
        for k, v in base.get(key, {}).items():
            d[k] -= v
    return {key: d for key, d in out.items() if d["count"] > 0}


def per_chunk(delta: Mapping[tuple[str, str], Mapping[str, float]], chunks: int) -> dict[str, Any]:
    """Requests per chunk by service (s3, dynamodb, sqs, then the rest) with each operation's share."""
    by_service: dict[str, dict[str, Any]] = {}
    for (service, op), d in sorted(delta.items(), key=lambda kv: -kv[1]["count"]):
        s = by_service.setdefault(service, {"per_chunk": 0.0, "cpu_ms_per_chunk": 0.0, "operations": {}})
        s["per_chunk"] += d["count"] / chunks
        s["cpu_ms_per_chunk"] += d["cpu_s"] * 1000 / chunks
        s["operations"][op] = {"per_chunk": d["count"] / chunks, "errors": int(d["errors"]),
                               "cpu_ms_each": d["cpu_s"] * 1000 / d["count"]}
    order = [s for s in SERVICES if s in by_service] + sorted(set(by_service) - set(SERVICES))
    return {s: by_service[s] for s in order}


def invocation_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    out = {}
    for name, a in after.items():
        b = before.get(name, {})
        d = {k: float(a[k]) - float(b.get(k, 0)) for k in ("invocations", "errors", "cold_starts", "seconds")}
        if d["invocations"]:
            out[name] = d
    return out


def queued_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Jobs that waited for a worker over the run, by source kind: count, average wait (ms), and the
    longest wait the server has seen (it keeps no history to take a maximum over the run alone)."""
    out = {}
    for kind, a in after.items():
        b = before.get(kind, {})
        jobs = int(a["jobs"]) - int(b.get("jobs", 0))
        if jobs:
            waited = float(a["queued_seconds"]) - float(b.get("queued_seconds", 0))
            out[kind] = {"jobs": jobs, "avg_ms": waited / jobs * 1000, "max_s": float(a["max_queued_seconds"])}
    return out


# ---- one run of N channels ------------------------------------------------------------------------
@dataclass
class Run:
    channels: int
    chunks_per_channel: int
    segment_time: float
    wall_s: float = 0.0
    latency: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)
    by_function: dict[str, dict[str, Any]] = field(default_factory=dict)
    invocations: dict[str, dict[str, float]] = field(default_factory=dict)
    queued: dict[str, dict[str, float]] = field(default_factory=dict)
    others: list[tuple[str, float]] = field(default_factory=list)
    late_uploads: int = 0
    lost_writes: int = 0

    @property
    def ratio(self) -> float:
        ff = self.cpu.get("ffmpeg", 0.0)
        return (self.cpu.get("emulator", 0.0) + self.cpu.get("lambda_python", 0.0)) / ff if ff else float("inf")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def make_chunks(out_dir: Path, chunks: int, segment_time: float) -> list[Path]:
    from bench.latency import make_chunks as cut

    return cut(out_dir, chunks, segment_time)


def run_channels(n: int, files: list[Path], segment_time: float, workers: int, drain: float = 60.0,
                 trace_dir: Path | None = None) -> Run:
    import boto3

    from chalicelib import records
    from chalicelib.media.ladder import LADDERS
    from devtools.localaws import LocalAWS
    from devtools.localaws.deploy import deploy

    run = Run(n, len(files), segment_time)
    server = LocalAWS(state_dir=tempfile.mkdtemp(prefix="bench-channels-"), workers=workers)
    saved = dict(os.environ)
    if trace_dir is not None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        os.environ["LOCALAWS_TRACE"] = str(trace_dir / f"jobs-{n}.jsonl")  # the server inherits it
    try:
        server.start()
        os.environ.update(server.env())
        dep = deploy(REPO, stage="local", endpoint=server.endpoint)
        session = boto3.session.Session(aws_access_key_id=BENCH_KEY, aws_secret_access_key=BENCH_KEY,
                                        region_name=server.env()["AWS_DEFAULT_REGION"])
        s3 = session.client("s3", endpoint_url=server.endpoint)
        table = session.resource("dynamodb", endpoint_url=server.endpoint).Table(dep.table_name)
        stamp = int(time.time()) % 100000
        channels = [f"bench{stamp}-{c}" for c in range(n)]
        for cid in channels:
            rec = records.ChannelRecord(id=cid, state=records.RUNNING, ladder="test", segment_duration=segment_time,
                                        started_at=records.iso(records.utcnow()))
            table.put_item(Item={k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()})
        bodies = [f.read_bytes() for f in files]
        listings = Listings(channels, LADDERS["test"].names)
        stats0 = _get_json(f"{server.endpoint}/_localaws/stats")
        last_write = _get_json(f"{server.endpoint}/_localaws/s3-writes?after=0&bucket={dep.origin_bucket}")["last"]
        stop_watch = threading.Event()

        def watch() -> None:
            nonlocal last_write
            while not stop_watch.wait(0.1):
                got = _get_json(f"{server.endpoint}/_localaws/s3-writes?after={last_write}&bucket={dep.origin_bucket}")
                run.lost_writes += int(got["lost"])
                listings.feed(got["writes"])
                last_write = int(got["last"])

        watcher = threading.Thread(target=watch, name="write-watch", daemon=True)
        sampler = CpuSampler(server.pid)
        watcher.start()
        sampler.start()
        t0 = time.time()
        schedule = sorted((t0 + (i + 1 + c / n) * segment_time, c, i) for c in range(n) for i in range(len(files)))
        uploaded: dict[tuple[str, int], float] = {}
        for at, c, i in schedule:
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5 * segment_time:
                run.late_uploads += 1  # the uploads themselves fell behind: the result is suspect
            s3.put_object(Bucket=dep.ingest_bucket, Key=f"{channels[c]}/{i:08d}.ts", Body=bodies[i])
            uploaded[(channels[c], i)] = time.time()
        deadline = time.time() + drain
        want = len(files)
        while time.time() < deadline and any(len(listings.listed_at[ch]) < want for ch in channels):
            time.sleep(0.2)
        time.sleep(0.2)  # the watcher's last read
        stop_watch.set()
        watcher.join()
        run.cpu = sampler.finish()
        run.others = sampler.others
        run.wall_s = time.time() - t0
        stats1 = _get_json(f"{server.endpoint}/_localaws/stats")
        run.latency = latency_summary(uploaded, listings.listed_at, segment_time)
        if trace_dir is not None:
            (trace_dir / f"chunks-{n}.json").write_text(json.dumps({
                "uploaded": {f"{c}/{i}": t for (c, i), t in uploaded.items()}, "listed": listings.listed_at}))
        run.queued = queued_delta(stats0.get("queued", {}), stats1.get("queued", {}))
        run.invocations = invocation_delta(stats0["invocations"], stats1["invocations"])
        functions = sorted(set(dep.functions.values()))
        run.requests = per_chunk(request_delta(stats0["requests"], stats1["requests"], functions), len(uploaded))
        run.by_function = {
            fn: per_chunk(request_delta(stats0["requests"], stats1["requests"], [fn]), len(uploaded))
            for fn in functions}
        run.by_function = {fn: t for fn, t in run.by_function.items() if t}
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
    return run


# ---- report ---------------------------------------------------------------------------------------
def report(r: Run) -> str:
    lat, cpu = r.latency, r.cpu
    total_chunks = r.channels * r.chunks_per_channel
    per = {k: cpu[k] / total_chunks * 1000 for k in ("emulator", "lambda_python", "ffmpeg")}
    lines = [
        f"N={r.channels}: {r.channels} x {r.chunks_per_channel} chunks of {r.segment_time:g} s (test ladder), "
        f"{r.wall_s:.0f} s wall",
        f"  listed within 1 chunk: {lat['within_chunk'] * 100:.1f} % | upload->listed p50 {lat['p50_s']:.2f} s "
        f"p95 {lat['p95_s']:.2f} s = {lat['p95_s'] / r.segment_time:.2f} x chunk (target <= 1.00) | "
        f"max {lat['max_s']:.2f} s | first chunks (cold) max {lat['first_chunk_max_s']:.2f} s"
        + (f" | {lat['missing']} never listed" if lat["missing"] else ""),
        f"  CPU-s: emulator {cpu['emulator']:.1f} | Lambda Python {cpu['lambda_python']:.1f} | ffmpeg "
        f"{cpu['ffmpeg']:.1f} | other {cpu['other']:.1f} (bench {cpu['other_bench']:.1f}, rest of machine "
        f"{cpu['other_rest']:.1f}{_others(r.others)}) | machine {cpu['machine']:.1f} = "
        f"{cpu['machine'] / r.wall_s:.2f} cores",
        f"  (emulator + Lambda Python) / ffmpeg = {r.ratio:.2f} (target <= {TARGET_RATIO:.2f}: "
        f"{r.ratio / TARGET_RATIO:.2f} x target) | per chunk: emulator {per['emulator']:.0f} ms, "
        f"Lambda Python {per['lambda_python']:.0f} ms, ffmpeg {per['ffmpeg']:.0f} ms",
    ]
    parts = []
    for service, s in r.requests.items():
        ops = ", ".join(f"{op} {o['per_chunk']:.2f} x {o['cpu_ms_each']:.1f} ms"
                        + (f" ({o['errors']} err)" if o["errors"] else "") for op, o in s["operations"].items())
        parts.append(f"    {service} {s['per_chunk']:.2f}/chunk, server {s['cpu_ms_per_chunk']:.1f} ms/chunk: {ops}")
    lines.append("  pipeline requests per chunk (Lambdas' own; the encoder's 1 PutObject is not counted):")
    lines += parts
    for fn, table in r.by_function.items():
        ops = ", ".join(f"{service}.{op} {o['per_chunk']:.2f}" for service, s in table.items()
                        for op, o in s["operations"].items())
        lines.append(f"    by {fn.rsplit('-', 1)[-1]}: {ops}")
    inv = ", ".join(f"{name.rsplit('-', 1)[-1]} {d['invocations'] / total_chunks:.2f} "
                    f"({d['seconds'] / d['invocations'] * 1000:.0f} ms avg, {int(d['cold_starts'])} cold)"
                    for name, d in r.invocations.items())
    lines.append(f"  Lambda invocations per chunk: {inv}")
    if r.queued:
        lines.append("  queued for a worker: " + ", ".join(
            f"{kind} {q['jobs']:.0f} jobs, avg {q['avg_ms']:.0f} ms, max {q['max_s']:.2f} s"
            for kind, q in r.queued.items()))
    if r.late_uploads or r.lost_writes:
        lines.append(f"  WARNING: {r.late_uploads} uploads started late, {r.lost_writes} writes missed by the watcher")
    return "\n".join(lines)


def _others(others: list[tuple[str, float]]) -> str:
    return (": " + ", ".join(f"{name} {cpu:.1f}" for name, cpu in others)) if others else ""


def main(argv: list[str] | None = None) -> int:
    first = (__doc__ or "").splitlines()[0]
    ap = argparse.ArgumentParser(prog="python -m bench.channels", description=first)
    ap.add_argument("--channels", default="1,2,4", help="comma-separated channel counts (default 1,2,4)")
    ap.add_argument("--seconds", type=float, default=120.0, help="real-time seconds of ingest per run")
    ap.add_argument("--segment-time", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=4, help="the emulator's parallel Lambda invocations")
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    ap.add_argument("--trace", type=Path, default=None, help="keep the emulator's job trace and chunk times here")
    args = ap.parse_args(argv if argv is not None else [])
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    counts = [int(x) for x in args.channels.split(",") if x]
    chunks = max(2, round(args.seconds / args.segment_time))
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-channels-src-") as tmp:
        files = make_chunks(Path(tmp), chunks, args.segment_time)
        for n in counts:
            r = run_channels(n, files, args.segment_time, args.workers, trace_dir=args.trace)
            runs.append(r)
            if not args.json:
                print(report(r), flush=True)
    if args.json:
        print(json.dumps([{**r.__dict__, "requests": r.requests, "ratio": r.ratio} for r in runs], default=str))
    return 0 if all(r.latency["missing"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
