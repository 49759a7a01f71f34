"""Low-Latency HLS, measured: glass-to-glass latency of hls.js in low-latency mode vs regular HLS, stalls,
how fast a blocking playlist request is answered, what an IDR per part costs, and what the LL origin costs.

One run on the emulated stack with the demo ladder (devtools.demo with --low-latency: emulator, deployed
functions, chalice local, `slipstream push --part-time 0.5` of a live testsrc2, the demo server sending the
LL paths to the LL origin's handler):
1. hls.js plays `ll.m3u8` in lowLatencyMode for --seconds, then regular `master.m3u8` for --seconds, in
   headless Chromium (web/tests/player.spec.mjs). Glass-to-glass = wall clock minus the PROGRAM-DATE-TIME
   of the frame on screen (what the page shows), sampled every second; stalls = no progress for 1.5 s.
   PDT is anchored where the first part was uploaded, so the encoder's own 0.5 s to close a part is not
   in it (a camera's is not either: its clock is burnt in and the same).
2. Meanwhile a client holds blocking requests (`_HLS_msn`/`_HLS_part` for the next part, the way hls.js
   does) and notes when each part shows up; each part's upload (its S3 event) and publish time (PRT#
   done_at) come from the table: publish -> answer is the origin's own delay, upload -> answer the whole
   pipeline's.
3. The bitrate cost of an IDR every part: the demo ladder's 360p x264 settings over the same 20 s of
   testsrc2 with a keyframe every 2 s vs every 0.5 s, once at the ladder's bitrate (the cost shows as
   PSNR) and once at constant quality (the cost shows as bitrate).
4. The LL origin's cost: Lambda-seconds and requests per hour for 1,000 viewers behind CloudFront, from
   the measured handler times (the CDN-style request log) and request collapsing (one origin request per
   URL per cache; Origin Shield makes that one per URL).

Targets (issue #12): LL p50 <= 3 s, p95 <= 4 s, 0 stalls; blocking answer <= 100 ms p95 after the part
is published. Printed, never asserted. Usage (the machine must be quiet: take the heavy lock for all of it):

    flock /tmp/slipstream-heavy.lock .venv/bin/python -m bench.llhls [--seconds 125] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import m3u8

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "web" / "tests" / "player.spec.mjs"
VIEWERS = 1000
REGIONAL_CACHES = 13  # CloudFront regional edge caches: each asks the origin once per URL without Origin Shield
LAMBDA_GB = 0.5  # ll_origin's memory in .chalice/config.json (512 MB)
LAMBDA_GB_SECOND = 0.0000166667  # USD, x86, us-east-1
LAMBDA_REQUEST = 0.2 / 1e6
CLOUDFRONT_REQUEST = 0.01 / 1e4  # USD per HTTPS request (North America / Europe)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (every reported number was observed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3),
            "mean": round(statistics.fmean(values), 3) if values else float("nan"),
            "max": round(max(values), 3) if values else float("nan")}


# --------------------------------------------------------------------------- players


def play(url: str, seconds: float, low_latency: bool) -> dict[str, Any]:
    argv = ["node", str(SPEC), url, "--play", str(seconds), "--start-timeout", "90"]
    if low_latency:
        argv.append("--ll")
    proc = subprocess.run(argv, cwd=REPO / "web", capture_output=True, text=True, timeout=seconds + 240, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"the browser driver printed no report (exit {proc.returncode}): {proc.stderr[-1500:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    samples = report.get("samples") or []
    # The first seconds are the player converging on its target: measure from the 10th second on.
    steady = samples[10:]
    lat = [float(s["latency"]) for s in steady if s.get("latency")]
    rates = [float(s["rate"]) for s in steady if s.get("rate")]
    return {"ok": report.get("ok"), "failures": report.get("failures"), "stalls": report.get("stalls"),
            "stall_events": report.get("stallEvents"), "startup_s": report.get("startupSeconds"),
            "progressed_s": report.get("progressed"), "wall_s": report.get("wallSeconds"),
            "latency": summary(lat), "playback_rate": summary(rates), "target_latency": report.get("targetLatency"),
            "source": report.get("source"),
            "low_latency_mode": (report.get("engineConfig") or {}).get("lowLatencyMode")}


# --------------------------------------------------------------------------- blocking requests


class Blocker(threading.Thread):
    """A client doing what hls.js does in low-latency mode: always ask for the part after the last one."""

    def __init__(self, url: str, others: tuple[str, ...] = ()) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.others = others  # the other renditions' LL playlists, as the RENDITION-REPORTs name them
        self.seen: dict[tuple[int, int], float] = {}  # (msn, part) -> wall time its playlist arrived
        self.held: list[float] = []
        self.errors: list[str] = []
        # Every answer checked against the one before (devtools.updates.ll_violations), and the delta update
        # for the same directives against it (delta_violations): what an hls.js in LL mode merges.
        self.versions = self.deltas = 0
        self.violations: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        msn: int | None = None
        part = 0
        prev: str | None = None
        while not self.stop.is_set():
            query = f"?_HLS_msn={msn}&_HLS_part={part}" if msn is not None else ""
            try:
                with urllib.request.urlopen(self.url + query, timeout=15) as r:
                    text = r.read().decode()
                    held = r.headers.get("CMSD-Static", "ht=0").removeprefix("ht=")
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                self.errors.append(str(e)[:200])
                time.sleep(0.5)
                msn = None
                continue
            now = time.time()
            self.held.append(float(held) / 1000)
            self._check(prev, text, query)
            prev = text
            for key in _parts(text):
                self.seen.setdefault(key, now)
            report = re.search(r"LAST-MSN=(\d+),LAST-PART=(\d+)", text)  # where this playlist ends
            if report:
                msn, part = int(report.group(1)), int(report.group(2)) + 1


    def _check(self, prev: str | None, text: str, query: str) -> None:
        from devtools.updates import delta_violations, ll_violations

        self.versions += 1
        self.violations += [f"v{self.versions}: {v}" for v in ll_violations(prev, text, self.others)]
        if "CAN-SKIP-UNTIL" not in text or "#EXT-X-ENDLIST" in text or self.versions % 4:
            return  # one delta in four answers: the checks must not load the machine being measured
        try:  # the part is there now: answered at once
            with urllib.request.urlopen(self.url + (query + "&" if query else "?") + "_HLS_skip=YES", timeout=15) as r:
                delta = r.read().decode()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            self.errors.append(f"delta: {str(e)[:200]}")
            return
        if "#EXT-X-SKIP:" in delta:
            self.deltas += 1
            self.violations += [f"v{self.versions} delta: {v}" for v in delta_violations(text, delta)]


def _parts(text: str) -> list[tuple[int, int]]:
    """(seq, part index) of every EXT-X-PART of an LL playlist (from the part URIs)."""
    pattern = r'#EXT-X-PART:[^\n]*URI="[^"]*?(\d{8,12})\.(\d)\.m4s"'
    return [(int(m.group(1)), int(m.group(2))) for m in re.finditer(pattern, text)]


def part_times(env: dict[str, str], channel: str) -> dict[tuple[int, int], tuple[float, float]]:
    """(seq, part) -> (uploaded, published) epoch seconds, from the PRT# items."""
    import boto3
    from boto3.dynamodb.conditions import Key

    table = boto3.resource("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).Table(env["TABLE_NAME"])
    out: dict[tuple[int, int], tuple[float, float]] = {}
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"CH#{channel}") & Key("sk").begins_with("PRT#")}
    while True:
        resp = table.query(**kwargs)
        for it in resp.get("Items", []):
            if it.get("done_at") and it.get("received_at"):
                out[(int(it["seq"]), int(it["part"]))] = (_epoch(str(it["received_at"])), _epoch(str(it["done_at"])))
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class _RegularWatcher(threading.Thread):
    """The regular playlists, DVR and the MPD of the LL channel, for players that do not do LL-HLS: every
    version checked against its predecessor and every listed URL fetched once (devtools.updates.Watcher)."""

    def __init__(self, base_url: str, channel: str) -> None:
        from devtools.updates import Watcher

        super().__init__(daemon=True)
        self.base = f"{base_url}/origin"
        self.stop = threading.Event()
        self.load: list[float] = []
        self.edge_delay: list[float] = []  # seconds, up to one poll late
        self._seen_edge = ""
        self.watcher = Watcher(fetch=self._fetch, channel=channel, exists=self._exists,
                               playlists=("360p/live.m3u8", "360p/dvr.m3u8", "audio/live.m3u8", "audio/dvr.m3u8"))

    def _fetch(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"{self.base}/{path}", timeout=10) as r:
                return bytes(r.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return None

    def _exists(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{self.base}/{path}", method="HEAD"), timeout=10):
                return True
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return False

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.watcher.poll()
            self.load.append(os.getloadavg()[0])  # another job on the machine shows here
            self._edge()

    def _edge(self) -> None:
        """How long after its last frame's PROGRAM-DATE-TIME the newest segment of live.m3u8 is seen (the
        regular players' share of glass-to-glass, before their hold-back)."""
        text = self.watcher.last("360p/live.m3u8")
        if not text or text == self._seen_edge:
            return
        self._seen_edge = text
        last = m3u8.loads(text).segments[-1:]
        if last and last[0].program_date_time is not None:
            end = last[0].program_date_time.timestamp() + float(last[0].duration)
            self.edge_delay.append(time.time() - end)


# --------------------------------------------------------------------------- IDR per part


def idr_cost(seconds: float = 20.0) -> dict[str, Any]:
    """The demo ladder's 360p settings over the same testsrc2, a keyframe every 2 s vs every 0.5 s."""
    from chalicelib.media.ladder import TEST_LADDER
    from chalicelib.transcode.ffmpeg import find_binary, video_encoder_args

    ffmpeg = find_binary("ffmpeg")
    r = TEST_LADDER.video[0]
    out: dict[str, Any] = {"rendition": r.name, "seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="bench-idr-") as tmp:
        src = f"testsrc2=size={r.width}x{r.height}:rate={TEST_LADDER.frame_rate}"
        for label, every in (("gop_2s", 2.0), ("idr_every_0.5s", 0.5)):
            keys = ",".join(f"{i * every:g}" for i in range(int(seconds / every)))
            for mode in ("ladder", "crf"):
                args = video_encoder_args(TEST_LADDER, r, keys)
                if mode == "crf":  # the same x264 settings at constant quality: the cost becomes bitrate
                    cut = args.index("-b:v")
                    args = [*args[:cut], "-crf", "23", *args[cut + 6:]]
                path = Path(tmp) / f"{label}-{mode}.mp4"
                subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-t", f"{seconds:g}",
                                "-i", src, *args, "-an", str(path)], check=True, capture_output=True, timeout=300)
                kbps = path.stat().st_size * 8 / 1000 / seconds
                psnr = subprocess.run([ffmpeg, "-hide_banner", "-nostats", "-i", str(path), "-f", "lavfi", "-t",
                                       f"{seconds:g}", "-i", src, "-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"],
                                      capture_output=True, text=True, timeout=300).stderr
                m = re.search(r"average:([0-9.]+|inf)", psnr)
                out[f"{label}_{mode}"] = {"kbps": round(kbps, 1), "psnr_db": float(m.group(1)) if m else None}
    out["bitrate_cost_at_constant_quality"] = round(
        out["idr_every_0.5s_crf"]["kbps"] / out["gop_2s_crf"]["kbps"] - 1, 3)
    out["psnr_cost_at_ladder_bitrate_db"] = round(
        (out["gop_2s_ladder"]["psnr_db"] or 0) - (out["idr_every_0.5s_ladder"]["psnr_db"] or 0), 2)
    return out


# --------------------------------------------------------------------------- origin cost


def origin_cost(log: Path, parts_per_second: float, renditions: int) -> dict[str, Any]:
    """From the CDN-style request log of the run: handler time per LL request kind, scaled to an hour of
    one channel behind CloudFront (each distinct URL reaches the origin once per cache)."""
    kinds: dict[str, list[float]] = {"blocking_playlist": [], "playlist": [], "part": []}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        stem, query = rec["cs-uri-stem"], rec["cs-uri-query"]
        if stem.endswith("/ll.m3u8") and stem.count("/") >= 4:
            kinds["blocking_playlist" if "_HLS_msn" in query else "playlist"].append(float(rec["time-taken"]))
        elif re.search(r"\d{8}\.\d\.m4s$", stem):
            kinds["part"].append(float(rec["time-taken"]))
    per_hour = parts_per_second * 3600
    # Unique origin URLs per channel-hour: one blocking playlist and one part per part and playlist
    # (every video rendition is in use by someone among 1,000 viewers, plus the audio rendition).
    urls = {"blocking_playlist": per_hour * renditions, "part": per_hour * renditions}
    means = {k: statistics.fmean(v) if v else 0.0 for k, v in kinds.items()}
    out: dict[str, Any] = {"handler_seconds": {k: summary(v) for k, v in kinds.items()}}
    for shield, caches in (("with_origin_shield", 1), ("without_origin_shield", REGIONAL_CACHES)):
        requests = sum(n * caches for n in urls.values())
        seconds = sum(urls[k] * caches * means[k] for k in urls)
        out[shield] = {"origin_requests_per_hour": round(requests), "lambda_seconds_per_hour": round(seconds),
                       "lambda_usd_per_hour": round(seconds * LAMBDA_GB * LAMBDA_GB_SECOND
                                                    + requests * LAMBDA_REQUEST, 3)}
    # Viewers' requests to CloudFront (independent of collapsing): hls.js in LL mode asks for the next part's
    # playlist and the part itself, for video and audio, every part; regular HLS one playlist + one segment
    # per rendition per 2 s segment.
    ll_viewer = parts_per_second * 3600 * 2 * 2
    regular_viewer = 3600 / 2 * 2 * 2
    out["viewer_requests_per_hour"] = {
        "ll_hls": round(ll_viewer * VIEWERS), "regular_hls": round(regular_viewer * VIEWERS),
        "ll_cloudfront_usd": round(ll_viewer * VIEWERS * CLOUDFRONT_REQUEST, 2),
        "regular_cloudfront_usd": round(regular_viewer * VIEWERS * CLOUDFRONT_REQUEST, 2)}
    return out


# --------------------------------------------------------------------------- the run


def measure(seconds: float, skip_regular: bool = False) -> dict[str, Any]:
    from devtools import demo

    work = Path(tempfile.mkdtemp(prefix="bench-llhls-"))
    stack = demo.start_demo(channel_id="bench", low_latency=True, work_dir=work, startup_timeout=240)
    result: dict[str, Any] = {"seconds_per_mode": seconds}
    try:
        ll_url = f"{stack.base_url}/origin/bench/360p/ll.m3u8"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # parts flowing
            try:
                with urllib.request.urlopen(ll_url, timeout=10) as r:
                    if r.read().count(b"#EXT-X-PART:") >= 8:
                        break
            except urllib.error.URLError:
                pass
            time.sleep(1)
        blocker = Blocker(f"{stack.base_url}/origin/bench/240p/ll.m3u8", ("../360p/ll.m3u8", "../audio/ll.m3u8"))
        blocker.start()
        watcher = _RegularWatcher(stack.base_url, "bench")
        watcher.start()
        t0 = time.time()
        result["ll_hls"] = play(stack.player_url(), seconds, low_latency=True)
        t1 = time.time()
        blocker.stop.set()
        if not skip_regular:
            result["regular_hls"] = play(stack.player_url().replace("&ll=1", ""), seconds, low_latency=False)
        times = part_times(stack.env, "bench")
        answered = [(blocker.seen[k] - times[k][1], blocker.seen[k] - times[k][0]) for k in blocker.seen
                    if k in times and t0 + 5 < blocker.seen[k] < t1]
        by_part = {f"part_{i}": summary([blocker.seen[k] - times[k][1] for k in blocker.seen
                                         if k[1] == i and k in times and t0 + 5 < blocker.seen[k] < t1])
                   for i in range(4)}  # part 0 waits for the segment before it to be written in full
        result["blocking"] = {"published_to_answered_s": summary([a for a, _ in answered]),
                              "published_to_answered_by_part_s": by_part,
                              "uploaded_to_answered_s": summary([b for _, b in answered]),
                              "held_s": summary(blocker.held), "errors": blocker.errors[:5]}
        watcher.stop.set()
        watcher.join(timeout=30)
        w = watcher.watcher
        result["updates"] = {
            "ll_versions_checked": blocker.versions, "ll_deltas_checked": blocker.deltas,
            "ll_violations": len(blocker.violations), "ll_violation_examples": blocker.violations[:10],
            "regular_versions_checked": dict(w.versions), "regular_violations": len(w.violations),
            "regular_violation_examples": w.violations[:10], "listed_urls_missing": w.missing[:10]}
        result["regular_live_edge_delay_s"] = summary(watcher.edge_delay)
        result["load_average_1min"] = summary(watcher.load)  # 2 cores: above ~2.5 the numbers are not the stack's
        assert stack.realtime_log is not None
        result["origin_cost"] = origin_cost(stack.realtime_log, 4.0, 3)
    finally:
        stack.stop()
    result["idr_cost"] = idr_cost()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.llhls", description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--seconds", type=float, default=125.0, help="seconds of playback per mode (>= 120)")
    ap.add_argument("--ll-only", action="store_true", help="skip the regular-HLS run (quicker, no baseline)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = ap.parse_args(argv if argv is not None else [])
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    r = measure(args.seconds, skip_regular=args.ll_only)
    if args.json:
        print(json.dumps(r))
        return 0
    for mode in ("ll_hls", "regular_hls"):
        if mode not in r:
            continue
        m = r[mode]
        print(f"{mode}: glass-to-glass p50 {m['latency']['p50']:.2f} s, p95 {m['latency']['p95']:.2f} s "
              f"(n={m['latency']['n']}, target {m['target_latency']}), stalls {m['stalls']} (engine events "
              f"{m['stall_events']}), playback rate p50 {m['playback_rate']['p50']}, startup {m['startup_s']} s")
    if "ll_hls" in r and "regular_hls" in r:
        ratio = r["ll_hls"]["latency"]["p50"] / r["regular_hls"]["latency"]["p50"]
        print(f"  LL / regular glass-to-glass p50: {ratio:.2f}")
    b = r["blocking"]
    print(f"blocking reload: part published -> answered p50 {b['published_to_answered_s']['p50'] * 1000:.0f} ms, "
          f"p95 {b['published_to_answered_s']['p95'] * 1000:.0f} ms (n={b['published_to_answered_s']['n']}); "
          f"uploaded -> answered p50 {b['uploaded_to_answered_s']['p50'] * 1000:.0f} ms, "
          f"p95 {b['uploaded_to_answered_s']['p95'] * 1000:.0f} ms")
    i = r["idr_cost"]
    print(f"IDR every 0.5 s vs every 2 s ({i['rendition']}, same x264 settings): "
          f"+{i['bitrate_cost_at_constant_quality'] * 100:.1f} % bitrate at constant quality "
          f"({i['gop_2s_crf']['kbps']} -> {i['idr_every_0.5s_crf']['kbps']} kbit/s), "
          f"-{i['psnr_cost_at_ladder_bitrate_db']} dB PSNR at the ladder's bitrate "
          f"({i['gop_2s_ladder']['kbps']} / {i['idr_every_0.5s_ladder']['kbps']} kbit/s)")
    c = r["origin_cost"]
    for shield in ("with_origin_shield", "without_origin_shield"):
        x = c[shield]
        print(f"LL origin per channel-hour, {VIEWERS} viewers, {shield.replace('_', ' ')}: "
              f"{x['origin_requests_per_hour']:,} requests, {x['lambda_seconds_per_hour']:,} Lambda-s "
              f"(${x['lambda_usd_per_hour']})")
    v = c["viewer_requests_per_hour"]
    print(f"  viewer requests to CloudFront per hour: LL {v['ll_hls']:,} (${v['ll_cloudfront_usd']}), "
          f"regular {v['regular_hls']:,} (${v['regular_cloudfront_usd']})")
    print("  handler seconds: " + ", ".join(f"{k} p50 {s['p50']} p95 {s['p95']} (n={s['n']})"
                                              for k, s in c["handler_seconds"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
