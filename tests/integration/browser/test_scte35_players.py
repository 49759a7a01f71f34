"""Issue #11 in real players: a TS source with in-band SCTE-35 pushed live through the emulated pipeline
(deployed Lambdas, real ffmpeg), watched in the player page with Debian's chromium.

Every 30 s the source splices out for a planned 12 s; every break ends early, 6 s in: half of them by
the source's own cue-in (in-band), half by the operator (`POST .../return`, here its use case). hls.js
reports the DATERANGE (and the CUE tags), shaka-player raises timeline regions, dash.js raises the
EventStream events, and each of them sees the break end early. With the interstitials dialect, hls.js
plays the channel's ad asset in the break and returns to live without a stall.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import threefive

from chalicelib import records, root
from chalicelib.media import scte35
from chalicelib.transcode.ffmpeg import find_binary
from tests.support.cued_source import TICKS, first_pts, make_chunks, upload_live, with_cues
from tests.support.players import report_of, watch_together

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "web" / "tests" / "ads.spec.mjs"
CID = "itest-ads"
CHUNKS = 170  # 340 s of live source
EVERY, FIRST = 15, 8  # a break every 15 chunks (30 s), the first at chunk 8
PLANNED, BACK = 12.0, 3  # planned 12 s; the return comes 3 chunks (6 s) in
AD = "ads/ad-12s"


def breaks_plan(pts: list[int]) -> tuple[dict[int, list[scte35.Cue]], list[dict[str, Any]]]:
    plan: dict[int, list[scte35.Cue]] = {}
    out = []
    for i, k in enumerate(range(FIRST, CHUNKS - 2 * BACK, EVERY)):
        event = 100 + i
        cue = scte35.splice_insert(event, pts[k] / TICKS, PLANNED)
        for sent in (k - 2, k - 1):  # resent ahead of the splice, as encoders do
            plan.setdefault(sent, []).append(cue)
        by_source = i % 2 == 1
        if by_source:
            back = scte35.splice_insert(event, pts[k + BACK] / TICKS, None, out_of_network=False)
            plan.setdefault(k + BACK - 1, []).append(back)
        out.append({"event": event, "chunk": k, "id": f"src1-{event}-{k * 2 * 1000}", "by_source": by_source})
    return plan, out


def make_ad(work: Path, s3: Any, bucket: str) -> str:
    """A 12 s HLS VOD ad (fMP4, its own look) in the origin bucket, as an ad server would host it."""
    out = work / "ad"
    out.mkdir()
    subprocess.run([find_binary("ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "smptebars=size=320x180:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000", "-t", f"{PLANNED:g}",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-ac", "2", "-f", "hls", "-hls_time", "2",
                    "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
                    "-hls_segment_filename", str(out / "seg%03d.m4s"), str(out / "index.m3u8")],
                   check=True, capture_output=True, timeout=300)
    for f in out.iterdir():
        kind = "application/vnd.apple.mpegurl" if f.suffix == ".m3u8" else "video/mp4"
        s3.put_object(Bucket=bucket, Key=f"{AD}/{f.name}", Body=f.read_bytes(), ContentType=kind)
    return f"/origin/{AD}/index.m3u8"


def returner(cid: str, plan: list[dict[str, Any]], stop: threading.Event, done: list[str]) -> None:
    """The operator: 6.5 s into each break the source does not end, POST .../return (the use case)."""
    from chalicelib.control.adbreaks import return_ad_break

    ctl = root.control()
    pending = [b for b in plan if not b["by_source"]]
    while pending and not stop.is_set():
        items = {i["id"]: i for i in ctl.store.list_breaks(cid)}
        now = ctl.clock()
        for b in list(pending):
            item = items.get(b["id"])
            if item is None:
                continue
            if now >= records.parse_iso(str(item["start"])) + timedelta(seconds=BACK * 2 + 0.5):
                try:
                    return_ad_break(ctl, cid, b["id"])
                    done.append(b["id"])
                except Exception as e:  # a break already over (a slow run): the players' checks will say so
                    done.append(f"{b['id']}: {e}")
                pending.remove(b)
        stop.wait(0.5)


@pytest.fixture(scope="module")
def live_ads(deployed: Any, boto: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory,
             browser_ready: None) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("scte-players")
    chunks = make_chunks(work / "plain", CHUNKS * 2)
    pts = [first_pts(c) for c in chunks]
    plan, breaks = breaks_plan(pts)
    cued = with_cues(chunks, plan, work / "cued")
    ad_url = make_ad(work, boto("s3"), deployed.origin_bucket)
    rec = records.ChannelRecord(id=CID, state=records.RUNNING, ladder="test", marker_style="both",
                                started_at=records.iso(records.utcnow()))
    item = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()}
    boto3.resource("dynamodb").Table(deployed.table_name).put_item(Item=item)
    root.reset()
    stop, returned = threading.Event(), []  # type: ignore[var-annotated]
    pusher = threading.Thread(target=upload_live, args=(boto("s3"), deployed.ingest_bucket, CID, cued),
                              kwargs={"stop": stop}, daemon=True)
    operator = threading.Thread(target=returner, args=(CID, breaks, stop, returned), daemon=True)
    pusher.start()
    operator.start()
    from devtools.demo import WEB, S3ObjectSource, ServerConfig, serving

    config = ServerConfig(web_root=WEB, origin=S3ObjectSource(boto("s3"), deployed.origin_bucket), api_base="")
    try:
        with serving(config) as base:
            yield {"base": base, "breaks": breaks, "returned": returned, "ad": ad_url, "dep": deployed}
    finally:
        stop.set()
        pusher.join(timeout=10)
        operator.join(timeout=10)


def watch(live: dict[str, Any], engine: str, fmt: str, play: float = 75, *until: str, name: str = "") -> dict[str, Any]:
    manifest = "manifest.mpd" if fmt == "dash" else "master.m3u8"
    base = live["base"]
    url = f"{base}/player.html?channel={CID}&src={base}/origin/{CID}/{manifest}&api=/api"
    shots = ROOT / ".demo" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    name = name or f"scte35-{engine}-{fmt}"
    argv = ["node", str(SPEC), url, "--engine", engine, "--format", fmt, "--play", str(play), *until,
            "--start-timeout", "120", "--screenshot", str(shots / f"{name}.png")]
    proc = subprocess.run(argv, cwd=ROOT / "web", capture_output=True, text=True, timeout=play + 240, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the driver printed no report (exit {proc.returncode}): {proc.stderr[-2000:]}"
    (shots / f"{name}.json").write_text(lines[-1])  # the whole report, next to the screenshot
    report: dict[str, Any] = json.loads(lines[-1])
    print(f"{engine}/{fmt}:", json.dumps({k: report.get(k) for k in (
        "ok", "failures", "startupSeconds", "wallSeconds", "progressed", "stalls", "latency", "breaks",
        "interstitials", "breakStatuses")}))
    return report


def ended_early(report: dict[str, Any], live: dict[str, Any], source: str) -> dict[str, Any]:
    """The first break that began while the engine watched, seen with its in-point through `source`: it
    ended early (6 s in by the source's cue-in, or at the boundary after the operator's return at 6.5 s),
    and its out cue, as the engine handed it to the page, decodes with threefive to the source's."""
    assert report["ok"], {k: report.get(k) for k in ("failures", "errors", "log", "console")}
    seen = [b for b in report["breaks"] if source in b["sources"] and b["end"] is not None and "in" in b["kinds"]
            and b["start"] >= report["startPosition"] - 0.5]
    assert seen, (report["startPosition"], report["breaks"])
    b = seen[0]
    ours = {str(x["event"]): x for x in live["breaks"]}
    assert b["eventId"] in ours, b  # the source's splice_event_id, decoded by the page from the cue
    assert BACK * 2.0 - 0.01 <= b["end"] - b["start"] <= BACK * 2.0 + 2.01, b  # ended early, on a boundary
    outs = [m for m in report["markers"] if m["source"] == source and m["kind"] == "out" and m["scte35"]
            and m["breakKey"] == b["key"]]
    assert outs, report["markers"]
    cue = threefive.Cue(outs[0]["scte35"])
    assert (cue.command.splice_event_id, cue.command.out_of_network_indicator, cue.command.break_duration) == (
        int(b["eventId"]), True, PLANNED)  # the encoder's cue, passed through
    return b


ONE_BREAK = ("--until-breaks", "1")


@pytest.fixture(scope="module")
def first_breaks(live_ads: dict[str, Any]) -> dict[str, dict[str, Any] | BaseException]:
    """hls.js, dash.js and shaka watch the channel at the same time, each until it has seen one break."""
    return watch_together({
        "hlsjs": lambda: watch(live_ads, "hlsjs", "hls", 75, *ONE_BREAK),
        "dashjs": lambda: watch(live_ads, "dashjs", "dash", 75, *ONE_BREAK),
        "shaka": lambda: watch(live_ads, "shaka", "dash", 75, *ONE_BREAK),
    })


def test_hlsjs_reports_the_daterange_and_cue_tags_and_the_early_return(
        live_ads: dict[str, Any], first_breaks: dict[str, Any]) -> None:
    b = ended_early(report_of(first_breaks, "hlsjs"), live_ads, "daterange")
    assert "cue" in b["sources"] and any(i.startswith("src1-") for i in b["ids"])
    assert b["duration"] == pytest.approx(PLANNED)  # PLANNED-DURATION; END-DATE says where it ended


def test_dashjs_raises_the_eventstream_events_out_and_in(
        live_ads: dict[str, Any], first_breaks: dict[str, Any]) -> None:
    b = ended_early(report_of(first_breaks, "dashjs"), live_ads, "dash-event")
    assert len(b["ids"]) == 2  # two Events: the out (its splice_event_id) and the in-cue


def test_shaka_raises_timeline_regions_out_and_in(
        live_ads: dict[str, Any], first_breaks: dict[str, Any]) -> None:
    b = ended_early(report_of(first_breaks, "shaka"), live_ads, "dash-event")
    assert len(b["ids"]) == 2


def test_with_interstitials_hlsjs_plays_the_ad_in_the_break_and_returns_to_live_without_a_stall(
        live_ads: dict[str, Any]) -> None:
    table = boto3.resource("dynamodb").Table(live_ads["dep"].table_name)
    table.update_item(Key={"pk": f"CH#{CID}", "sk": "META"},
                      UpdateExpression="SET marker_style = :m, ad_asset_uri = :a",
                      ExpressionAttributeValues={":m": "interstitials,daterange", ":a": live_ads["ad"]})
    time.sleep(4)  # the next segment's publish carries the dialect
    report = watch(live_ads, "hlsjs", "hls", 100, "--until-interstitial", name="scte35-hlsjs-interstitials")
    assert report["ok"], {k: report.get(k) for k in ("failures", "errors", "log", "console")}
    events = report["interstitials"]
    kinds = [e["type"] for e in events]
    assert "asset-error" not in kinds, events
    first = kinds.index("started")
    assert "asset-started" in kinds[first:] and {"ended", "primary-resumed"} & set(kinds[first:]), events
    ids = {e["id"] for e in events if e["id"]}
    assert ids and all(i.startswith("src1-") and i.endswith("-ad") for i in ids)
    assets = [e["asset"] for e in events if e["type"] == "asset-started"]
    assert assets and all(str(a).endswith(live_ads["ad"]) for a in assets), assets  # the channel's ad asset
    assert report["stalls"] == 0  # through the ad and back
    assert report["latency"] is not None and 0 < report["latency"] < 40  # back at the live edge after the ad


def test_every_operator_return_was_taken(live_ads: dict[str, Any]) -> None:
    assert live_ads["returned"] and all(": " not in r for r in live_ads["returned"]), live_ads["returned"]
