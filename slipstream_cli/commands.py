"""The operator subcommands. Each prints a short human summary (or the raw JSON with --json)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from .client import ApiClient

Handler = Callable[[argparse.Namespace, ApiClient], int]


def _out(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> int:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human(data))
    return 0


def _kv(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {'-' if v is None or v == '' else v}" for k, v in pairs)


def _channel(c: dict[str, Any]) -> str:
    return _kv([("channel", c["id"]), ("name", c.get("name")), ("state", c["state"]),
                ("ladder", c.get("ladder")), ("segment", f"{c.get('segment_duration')}s"),
                ("markers", c.get("marker_style")),
                ("low latency", f"{c['low_latency']['part_duration']}s parts" if c.get("low_latency") else None),
                ("error", c.get("error"))])


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def create(args: argparse.Namespace, api: ApiClient) -> int:
    body: dict[str, Any] = {"id": args.channel}
    for field in ("name", "ladder", "marker_style", "segment_duration", "live_window", "dvr_window",
                  "dash_ad_markers", "dash_period_triggers", "ad_asset_uri", "ad_asset_list", "scte_filter"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    if getattr(args, "part_duration", None):
        body["low_latency"] = {"part_duration": args.part_duration}
    return _out(args, api.request("POST", "/channels", body), lambda c: "created\n" + _channel(c))


def list_(args: argparse.Namespace, api: ApiClient) -> int:
    def human(d: Any) -> str:
        rows = [[c["id"], c["state"], c.get("name") or "-", c.get("ladder", "")] for c in d["channels"]]
        return _table(rows, ["CHANNEL", "STATE", "NAME", "LADDER"]) if rows else "no channels"

    return _out(args, api.request("GET", "/channels"), human)


def show(args: argparse.Namespace, api: ApiClient) -> int:
    return _out(args, api.request("GET", f"/channels/{args.channel}"), _channel)


def start(args: argparse.Namespace, api: ApiClient) -> int:
    return _out(args, api.request("POST", f"/channels/{args.channel}/start"),
                lambda c: f"{c['id']}: {c['state']} (the lifecycle moves it to RUNNING)")


def stop(args: argparse.Namespace, api: ApiClient) -> int:
    return _out(args, api.request("POST", f"/channels/{args.channel}/stop"),
                lambda c: f"{c['id']}: {c['state']} (finalising VOD, then STOPPED)")


def delete(args: argparse.Namespace, api: ApiClient) -> int:
    return _out(args, api.request("DELETE", f"/channels/{args.channel}"), lambda d: f"{d['id']}: {d['state']}")


def status(args: argparse.Namespace, api: ApiClient) -> int:
    def human(s: Any) -> str:
        last = s.get("last_segment") or {}
        seg = f"#{last['seq']} {last.get('age_seconds')}s ago" if last else "none yet"
        lat = s.get("latency_seconds")
        return _kv([("channel", s["id"]), ("state", s["state"]), ("last segment", seg),
                    ("latency", None if lat is None else f"~{lat}s"),
                    ("input lost since", s.get("input_lost_since")),
                    ("errors", f"{s['errors']['count']}" + (f" (last: {s['errors']['last']})"
                                                            if s["errors"].get("last") else ""))])

    return _out(args, api.request("GET", f"/channels/{args.channel}/status"), human)


def playback(args: argparse.Namespace, api: ApiClient) -> int:
    return _out(args, api.request("GET", f"/channels/{args.channel}/playback"),
                lambda p: _kv([("hls", p["hls"]), ("dash", p["dash"]), ("dvr", p["dvr"])] +
                              ([("ll_hls", p["ll_hls"])] if p.get("ll_hls") else [])))


def ad_break(args: argparse.Namespace, api: ApiClient) -> int:
    body: dict[str, Any] = {"duration": args.duration, "kind": args.kind}
    if args.at:
        body["start"] = args.at
    if args.id:
        body["id"] = args.id

    def human(b: Any) -> str:
        note = "" if b.get("republished", True) else "\n(manifests update with the next segment)"
        return (f"ad break {b['id']} (splice event {b['splice_event_id']}, {b['kind']}) "
                f"{b['duration']}s at {b['start']} [{b['phase']}]{note}")

    return _out(args, api.request("POST", f"/channels/{args.channel}/ad-breaks", body), human)


def ad_breaks(args: argparse.Namespace, api: ApiClient) -> int:
    def human(d: Any) -> str:
        rows = [[b["id"], str(b["splice_event_id"]), b["start"], f"{b['duration']}s", b["kind"], b["phase"]]
                for b in d["ad_breaks"]]
        return _table(rows, ["BREAK", "EVENT", "START", "DURATION", "KIND", "PHASE"]) if rows else "no ad breaks"

    return _out(args, api.request("GET", f"/channels/{args.channel}/ad-breaks"), human)


def end_break(args: argparse.Namespace, api: ApiClient) -> int:
    return _out(args, api.request("DELETE", f"/channels/{args.channel}/ad-breaks/{args.break_id}"),
                lambda b: f"ad break {b['id']}: {b['state']}")


def return_break(args: argparse.Namespace, api: ApiClient) -> int:
    def human(b: Any) -> str:
        note = "" if b.get("republished", True) else " (manifests update with the next segment)"
        return f"ad break {b['id']}: returned at {b['returned_at']}; CUE-IN at the next segment boundary{note}"

    return _out(args, api.request("POST", f"/channels/{args.channel}/ad-breaks/{args.break_id}/return"), human)


def ingest_urls(args: argparse.Namespace, api: ApiClient) -> int:
    body = {"first_seq": args.first, "count": args.count, "extension": args.ext}
    return _out(args, api.request("POST", f"/channels/{args.channel}/ingest-urls", body),
                lambda d: "\n".join(f"{u['seq']}\t{u['url']}" for u in d["urls"]))


def add_parsers(sub: Any) -> None:
    def cmd(name: str, handler: Handler, help_: str, channel: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
        if channel:
            p.add_argument("channel", help="channel id (lower-case letters, digits, '-')")
        p.set_defaults(func=handler, needs_api=True)
        return p

    p = cmd("create", create, "create a channel")
    p.add_argument("--name")
    p.add_argument("--ladder")
    p.add_argument("--marker-style", dest="marker_style",
                   help="HLS ad-marker dialect(s), comma-separated: daterange, elemental, scte35_enhanced, "
                        "interstitials (or the older cue, both)")
    p.add_argument("--dash-ad-markers", dest="dash_ad_markers", choices=["binary", "xml"])
    p.add_argument("--dash-period-triggers", dest="dash_period_triggers", choices=["none", "avails"])
    p.add_argument("--ad-asset-uri", dest="ad_asset_uri", help="interstitials: the ad's HLS asset URL")
    p.add_argument("--ad-asset-list", dest="ad_asset_list", help="interstitials: an asset-list URL")
    p.add_argument("--scte-filter", dest="scte_filter", type=lambda v: [x for x in v.split(",") if x],
                   help="source SCTE-35 types that become breaks, comma-separated (MediaPackage names)")
    p.add_argument("--segment-duration", dest="segment_duration", type=float)
    p.add_argument("--live-window", dest="live_window", type=float)
    p.add_argument("--dvr-window", dest="dvr_window", type=float)
    p.add_argument("--low-latency", dest="part_duration", type=float, metavar="PART_SECONDS",
                   help="Low-Latency HLS with parts of this many seconds (e.g. 0.5; push with --part-time)")
    cmd("list", list_, "list channels", channel=False)
    cmd("show", show, "show one channel")
    cmd("start", start, "start a channel")
    cmd("stop", stop, "stop a channel (live-to-VOD)")
    cmd("delete", delete, "delete an idle or stopped channel")
    cmd("status", status, "state, last segment, latency, errors")
    cmd("playback", playback, "HLS / DASH / DVR URLs")
    p = cmd("ad-break", ad_break, "insert an ad break (now, or --at a time)")
    p.add_argument("duration", type=float, help="seconds")
    p.add_argument("--at", help="ISO-8601 start with timezone, e.g. 2026-01-01T12:00:00Z (default: now)")
    p.add_argument("--kind", default="splice_insert", choices=["splice_insert", "time_signal"])
    p.add_argument("--id", help="break id (default: derived from the splice event id)")
    cmd("ad-breaks", ad_breaks, "list ad breaks")
    p = cmd("end-break", end_break, "cancel a pending break or return early from a running one")
    p.add_argument("break_id")
    p = cmd("return", return_break, "end a running ad break now (early return: CUE-IN at the next boundary)")
    p.add_argument("break_id")
    p = cmd("ingest-urls", ingest_urls, "presigned upload URLs for source chunks")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--ext", default="ts", choices=["ts", "mp4"])
    from .qoe import add_parser as add_qoe  # reads CDN logs, not the API

    add_qoe(sub)
