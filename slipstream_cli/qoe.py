"""`slipstream qoe CHANNEL`: rebuffering and bitrate per viewer session, from CDN request logs.

Input: JSON lines with CloudFront real-time log field names (`timestamp`, `cs-uri-stem`,
`sc-status`, and the `cmcd-*` fields CloudFront extracts from CMCD, CTA-5004), one request per
line, values as CloudFront prints them ("-" when absent). `make demo`'s origin writes exactly that
(.demo/logs/cdn-realtime.jsonl); on AWS, a Kinesis Firehose that turns the real-time log stream
into JSON gives the same shape.

What CMCD lets a CDN log tell (every player on the page sends it, query mode):
- rebuffering: `bs` (buffer starvation) is set on the first request after the buffer ran dry;
- bitrate: `br` (encoded bitrate, kb/s) and `d` (object duration, ms) of every media object, so a
  duration-weighted average, the range and the switches between renditions;
- buffer level `bl`, measured throughput `mtp`, playback rate `pr`, top bitrate `tb`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

# CMCD key -> CloudFront real-time log field.
REALTIME_CMCD_FIELDS: dict[str, str] = {
    "br": "cmcd-encoded-bitrate",
    "bl": "cmcd-buffer-length",
    "bs": "cmcd-buffer-starvation",
    "cid": "cmcd-content-id",
    "d": "cmcd-object-duration",
    "dl": "cmcd-deadline",
    "mtp": "cmcd-measured-throughput",
    "nor": "cmcd-next-object-request",
    "nrr": "cmcd-next-range-request",
    "ot": "cmcd-object-type",
    "pr": "cmcd-playback-rate",
    "rtp": "cmcd-requested-maximum-throughput",
    "sf": "cmcd-streaming-format",
    "sid": "cmcd-session-id",
    "st": "cmcd-stream-type",
    "su": "cmcd-startup",
    "tb": "cmcd-top-bitrate",
    "v": "cmcd-version",
}
CMCD_HEADERS = ("CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session")
VIDEO_TYPES = frozenset({"v", "av"})
MEDIA_TYPES = frozenset({"v", "av", "a"})
DEFAULT_LOG = Path(".demo") / "logs" / "cdn-realtime.jsonl"


def parse_cmcd(payload: str) -> dict[str, str]:
    """One CMCD payload (`br=800,bl=4000,bs,sid="a,b"`) -> {key: value}; a bare key is "true".

    Strings keep their content without the quotes (commas inside quotes are part of the value)."""
    out: dict[str, str] = {}
    i, n = 0, len(payload)
    while i < n:
        j = i
        while j < n and payload[j] not in "=,":
            j += 1
        key = payload[i:j].strip()
        if j < n and payload[j] == "=":
            j += 1
            if j < n and payload[j] == '"':
                k, chars = j + 1, []
                while k < n and payload[k] != '"':
                    if payload[k] == "\\" and k + 1 < n:
                        k += 1
                    chars.append(payload[k])
                    k += 1
                value = "".join(chars)
                j = k + 1
                while j < n and payload[j] != ",":
                    j += 1
            else:
                k = j
                while k < n and payload[k] != ",":
                    k += 1
                value = payload[j:k].strip()
                j = k
        else:
            value = "true"
        if key:
            out[key] = value
        i = j + 1
    return out


def cmcd_from_request(query: str, headers: Mapping[str, str]) -> dict[str, str]:
    """CMCD from a request in either transmission mode: the `CMCD` query parameter, or the four headers."""
    data: dict[str, str] = {}
    for name, value in parse_qsl(query or "", keep_blank_values=True):
        if name == "CMCD":
            data.update(parse_cmcd(value))
    lowered = {k.lower(): v for k, v in headers.items()}
    for header in CMCD_HEADERS:
        if header.lower() in lowered:
            data.update(parse_cmcd(lowered[header.lower()]))
    return data


def _num(record: Mapping[str, Any], name: str) -> float | None:
    raw = record.get(name, "-")
    try:
        return None if raw in ("-", "", None) else float(raw)
    except (TypeError, ValueError):
        return None


def _flag(record: Mapping[str, Any], name: str) -> bool:
    return str(record.get(name, "-")).lower() in ("true", "1")


@dataclass
class Session:
    session_id: str
    formats: set[str] = field(default_factory=set)
    requests: int = 0
    errors: int = 0
    first: float = 0.0
    last: float = 0.0
    video_ms: float = 0.0
    rebuffers: int = 0
    startup_requests: int = 0
    _starved: bool = False
    _weighted_br: float = 0.0
    bitrates: list[float] = field(default_factory=list)  # br of each video object, in request order
    buffers: list[float] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    rates: set[float] = field(default_factory=set)
    top_bitrate: float | None = None

    def add(self, r: Mapping[str, Any]) -> None:
        t = _num(r, "timestamp") or 0.0
        self.first = t if not self.requests else min(self.first, t)
        self.last = max(self.last, t)
        self.requests += 1
        status = int(_num(r, "sc-status") or 0)
        if status >= 400:
            self.errors += 1
        if r.get("cmcd-streaming-format", "-") != "-":
            self.formats.add(str(r["cmcd-streaming-format"]))
        kind = str(r.get("cmcd-object-type", "-"))
        startup = _flag(r, "cmcd-startup")
        self.startup_requests += startup
        # Count starvation once per episode: on video objects when the player sends types, else on
        # any; players keep setting bs on every request while they stay starved (shaka does), so a
        # run of consecutive bs requests is one episode.
        if kind in VIDEO_TYPES or kind == "-":
            starved = _flag(r, "cmcd-buffer-starvation")
            if starved and not self._starved:
                self.rebuffers += 1
            self._starved = starved
        pr = _num(r, "cmcd-playback-rate")
        if pr is not None:
            self.rates.add(pr)
        tb = _num(r, "cmcd-top-bitrate")
        if tb is not None:
            self.top_bitrate = max(self.top_bitrate or 0.0, tb)
        if kind not in VIDEO_TYPES or status >= 400:
            return
        br, d = _num(r, "cmcd-encoded-bitrate"), _num(r, "cmcd-object-duration")
        if d is not None:
            self.video_ms += d
        if br is not None:
            self.bitrates.append(br)
            self._weighted_br += br * (d if d is not None else 1.0)
        bl, mtp = _num(r, "cmcd-buffer-length"), _num(r, "cmcd-measured-throughput")
        if bl is not None and not startup:
            self.buffers.append(bl)
        if mtp is not None:
            self.throughputs.append(mtp)

    def summary(self) -> dict[str, Any]:
        weight = self.video_ms if self.video_ms and self.bitrates else float(len(self.bitrates))
        minutes = self.video_ms / 60000.0
        return {
            "session_id": self.session_id,
            "formats": sorted(self.formats),
            "requests": self.requests,
            "errors": self.errors,
            "wall_seconds": round(self.last - self.first, 3),
            "video_seconds": round(self.video_ms / 1000.0, 3),
            "rebuffers": self.rebuffers,
            "rebuffers_per_minute": round(self.rebuffers / minutes, 3) if minutes else None,
            "bitrate_kbps": {
                "average": round(self._weighted_br / weight, 1) if self.bitrates and weight else None,
                "min": min(self.bitrates) if self.bitrates else None,
                "max": max(self.bitrates) if self.bitrates else None,
                "switches": sum(1 for a, b in zip(self.bitrates, self.bitrates[1:], strict=False) if a != b),
                "top": self.top_bitrate,
            },
            "buffer_seconds": {
                "median": round(statistics.median(self.buffers) / 1000.0, 3) if self.buffers else None,
                "min": round(min(self.buffers) / 1000.0, 3) if self.buffers else None,
            },
            "throughput_kbps_median": statistics.median(self.throughputs) if self.throughputs else None,
            "playback_rates": sorted(self.rates),
        }


def records_for(channel: str, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The channel's requests: CMCD content id first (the page sends cid=channel), else its path."""
    marker = f"/{channel}/"
    for r in records:
        cid = r.get("cmcd-content-id", "-")
        if cid == channel or (cid in ("-", "", None) and marker in str(r.get("cs-uri-stem", ""))):
            yield r


def summarise(channel: str, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    sessions: dict[str, Session] = {}
    without = 0
    for r in records_for(channel, records):
        sid = str(r.get("cmcd-session-id", "-"))
        if sid in ("-", ""):
            without += 1  # a player without CMCD: nothing to attribute it to
            continue
        sessions.setdefault(sid, Session(sid)).add(r)
    rows = [s.summary() for s in sorted(sessions.values(), key=lambda s: s.first)]
    return {
        "channel": channel,
        "sessions": rows,
        "requests_without_cmcd": without,
        "total": {
            "sessions": len(rows),
            "requests": sum(s["requests"] for s in rows),
            "errors": sum(s["errors"] for s in rows),
            "video_seconds": round(sum(s["video_seconds"] for s in rows), 3),
            "rebuffers": sum(s["rebuffers"] for s in rows),
        },
    }


def read_records(paths: Iterable[str]) -> Iterator[dict[str, Any]]:
    for path in paths:
        stream = sys.stdin if path == "-" else open(path)  # noqa: SIM115 -- closed below
        try:
            for number, line in enumerate(stream, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise QoeError(f"{path}:{number}: not a JSON object (one request per line)") from None
                if isinstance(record, dict):
                    yield record
        finally:
            if stream is not sys.stdin:
                stream.close()


class QoeError(Exception):
    """The logs cannot be read; the message says which file and line."""


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(report: Mapping[str, Any]) -> str:
    t = report["total"]
    lines = [f"channel {report['channel']}: {t['sessions']} session(s), {t['requests']} requests "
             f"({t['errors']} errors), {t['video_seconds']:.1f} s of video, {t['rebuffers']} rebuffer(s)"]
    if report["requests_without_cmcd"]:
        lines.append(f"({report['requests_without_cmcd']} requests carried no CMCD session id)")
    if not report["sessions"]:
        return "\n".join([*lines, "no CMCD sessions for this channel in the logs"])
    header = ["SESSION", "FMT", "REQS", "ERR", "VIDEO_S", "REBUF", "/MIN", "AVG_KBPS", "MIN", "MAX", "SWITCH",
              "BUF_MED_S", "BUF_MIN_S", "MTP_KBPS", "RATES"]
    rows = [[s["session_id"][:36], ",".join(s["formats"]) or "-", str(s["requests"]), str(s["errors"]),
             _fmt(s["video_seconds"]), str(s["rebuffers"]), _fmt(s["rebuffers_per_minute"], 2),
             _fmt(s["bitrate_kbps"]["average"], 0), _fmt(s["bitrate_kbps"]["min"], 0),
             _fmt(s["bitrate_kbps"]["max"], 0), str(s["bitrate_kbps"]["switches"]),
             _fmt(s["buffer_seconds"]["median"]), _fmt(s["buffer_seconds"]["min"]),
             _fmt(s["throughput_kbps_median"], 0), ",".join(f"{r:g}" for r in s["playback_rates"]) or "-"]
            for s in report["sessions"]]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    paths = args.log or [os.environ.get("SLIPSTREAM_CDN_LOG") or str(DEFAULT_LOG)]
    missing = [p for p in paths if p != "-" and not Path(p).is_file()]
    if missing:
        print(f"slipstream: no such log file: {', '.join(missing)} (make demo writes {DEFAULT_LOG}; "
              "pass --log for CloudFront real-time logs as JSON lines)", file=sys.stderr)
        return 1
    try:
        report = summarise(args.channel, read_records(paths))
    except QoeError as e:
        print(f"slipstream: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, sort_keys=True) if getattr(args, "json", False) else render(report))
    return 0


def add_parser(sub: Any) -> None:
    help_ = "rebuffering and bitrate per viewer session, from CMCD in CDN request logs"
    p: argparse.ArgumentParser = sub.add_parser("qoe", help=help_, description=help_)
    p.add_argument("channel", help="channel id (matched on CMCD cid, else on the request path)")
    p.add_argument("--log", action="append", metavar="PATH",
                   help="JSON-lines request log (repeatable; '-' is stdin; "
                        f"default: $SLIPSTREAM_CDN_LOG or {DEFAULT_LOG})")
    p.set_defaults(func=run, needs_api=False)

