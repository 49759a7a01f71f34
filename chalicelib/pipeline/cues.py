"""In-band SCTE-35 from the source: a chunk's cues become ad breaks, the same BRK# records the API writes.

Ingest reads every splice_info_section on the chunk's SCTE-35 PIDs (PMT stream_type 0x86, through
threefive: `media.scte35.read_ts`) while the chunk is on disk for the probe, and records what the cues
ask for before the chunk's transcode jobs leave, so the worker already forces an IDR at a splice point
inside this chunk (it reads the breaks for `splice_points`):

- a splice-out (splice_insert out_of_network=1, or time_signal with a segmentation descriptor that
  starts an avail) creates a break whose splice point is on the run's media clock (the cue's PTS, with
  pts_adjustment and the 33-bit wrap, through the chunk's first-frame PTS) and whose cue is the
  encoder's bytes verbatim. Encoders resend a cue until its splice time: a cue of the same run and
  event id whose break is still pending or running is the same break, not a new one.
- a return (out_of_network=0, or the avail's end descriptor) ends its break at its splice point (an
  early return when that is before the planned end), with the source's in-cue passed through;
- splice_event_cancel_indicator cancels a break that has not begun;
- only the segmentation types in the channel's `scte_filter` (MediaPackage's ScteFilter names) count.

Bad input never stops the chunk: a section whose CRC fails or that does not decode is dropped and
counted (`dropped_cues` on the channel, metric DroppedCues); a cue whose splice time lies before the
chunk that carries it or further ahead than the DVR window is refused, with the reason in the
channel's error log (META error/errors).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..control.adbreaks import CANCELLED, RETURNED, SCHEDULED, source_break_item
from ..media import scte35
from ..media.adbreaks import SourceSignal, source_signals
from ..media.scte35 import TsScan
from ..records import ChannelRecord, iso, parse_iso
from .deps import Deps
from .events import Upload
from .obs import MetricUnit, logger, metrics

# A cue may splice this far before the chunk carrying it (one frame of rounding), not more: earlier
# media is encoded already, and an IDR cannot be forced into it.
PAST_TOLERANCE = 0.05


def scan(path: str, ext: str) -> TsScan | None:
    """The SCTE-35 sections of an MPEG-TS chunk (None for MP4: it has no SCTE-35 PID)."""
    if ext != "ts":
        return None
    return scte35.read_ts(Path(path).read_bytes())


def scte_filter(meta: ChannelRecord) -> tuple[str, ...]:
    return tuple(meta.scte_filter) if meta.scte_filter else scte35.DEFAULT_SCTE_FILTER


def record(u: Upload, deps: Deps, meta: ChannelRecord, run: int, facts: dict[str, Any],
           run_item: dict[str, Any], found: TsScan | None) -> list[str]:
    """Turn one accepted chunk's cues into break changes; returns what happened to each (for logs, tests)."""
    if found is None or not (found.cues or found.dropped):
        return []
    store = deps.store
    outcomes: list[str] = []
    for reason in found.dropped:
        metrics.add_metric(name="DroppedCues", unit=MetricUnit.Count, value=1)
        store.count(u.channel, "dropped_cues", f"chunk {u.seq}: {reason}")
        logger.warning("SCTE-35 section dropped", extra={"reason": reason})
        outcomes.append(f"dropped: {reason}")
    if not found.cues:
        return outcomes
    avail = parse_iso(str(run_item["availability_start"]))
    start = float(facts["start_ticks"]) / scte35.TICKS_PER_SECOND
    end = start + float(facts["v_dur"]) / scte35.TICKS_PER_SECOND
    horizon = end + float(meta.dvr_window or deps.settings.dvr_window)
    breaks = [b for b in store.ad_break_items(u.channel) if b.get("source") == "source" and b.get("run") == run]
    seen: set[bytes] = set()
    for c in found.cues:
        if c.cue.data in seen:
            continue  # the same section twice in one chunk: one decision
        seen.add(c.cue.data)
        sigs = source_signals(c.cue, position=c.packet_pts, src_start=int(facts["src_start"]),
                              media_start=int(facts["start_ticks"]), scte_filter=scte_filter(meta))
        for sig in _matching(sigs, breaks):
            outcomes.append(apply_signal(u, deps, run, sig, breaks, avail, start, horizon))
    return outcomes


def _matching(sigs: tuple[SourceSignal, ...], breaks: list[dict[str, Any]]) -> tuple[SourceSignal, ...]:
    """Of a multi-descriptor cue's ends and cancels, those whose event id names one of the run's source
    breaks: a PO end next to an ad end closes whichever of them became a break, without an error for the
    other. When none names a break, the first one stands (and is refused with its reason)."""
    if len(sigs) < 2:
        return sigs
    known = {int(b["splice_event_id"]) for b in breaks}
    closing = [s for s in sigs if s.action in ("in", "cancel")]
    kept = [s for s in closing if s.event_id in known] or closing[:1]
    return tuple(s for s in sigs if s.action == "out" or s in kept)


def apply_signal(u: Upload, deps: Deps, run: int, sig: SourceSignal, breaks: list[dict[str, Any]], avail: datetime,
                 chunk_start: float, horizon: float) -> str:
    """Carry out one source signal against the run's source breaks (`breaks`, updated in place)."""
    if sig.action == "skip":
        logger.info("SCTE-35 cue ignored", extra={"reason": sig.reason, "event_id": sig.event_id})
        return f"ignored: {sig.reason}"
    mine = [b for b in breaks if int(b["splice_event_id"]) == sig.event_id]
    if sig.action == "out":
        same = next((b for b in mine if _same_break(b, sig.media)), None)
        if same is not None:
            return f"repeat of {same['id']}"
    if sig.action in ("out", "in"):
        problem = _out_of_range(sig, chunk_start, horizon)
        if problem:
            return _refuse(u, deps, sig, problem)
    if sig.action == "out":
        return _open(u, deps, run, sig, breaks, avail)
    if sig.action == "in":
        return _close(u, deps, sig, mine, avail)
    return _cancel(u, deps, sig, mine, chunk_start)


def _same_break(item: dict[str, Any], media: float) -> bool:
    """A resent cue: its splice time is the break's, or the break (same event id) is still ahead or open."""
    if item.get("state") == CANCELLED:
        return False
    at = float(item.get("media_time") or 0.0)
    if abs(at - media) < 0.5:
        return True
    end = item.get("return_media")
    if end is None and float(item.get("duration") or 0) > 0:
        end = at + float(item["duration"])
    return end is None or media < float(end)


def _out_of_range(sig: SourceSignal, chunk_start: float, horizon: float) -> str:
    if sig.media < chunk_start - PAST_TOLERANCE:
        return (f"its splice time {sig.media:.3f} s is before the chunk that carries it ({chunk_start:.3f} s): "
                "that media is encoded already")
    if sig.media > horizon:
        return (f"its splice time {sig.media:.3f} s is more than the DVR window ahead (limit {horizon:.3f} s); "
                "check the encoder's pts_adjustment")
    return ""


def _refuse(u: Upload, deps: Deps, sig: SourceSignal, why: str) -> str:
    message = f"chunk {u.seq}: SCTE-35 {sig.cue.command} (event {sig.event_id}) refused: {why}"
    deps.store.count_error(u.channel, message)
    metrics.add_metric(name="RefusedCues", unit=MetricUnit.Count, value=1)
    logger.warning("SCTE-35 cue refused", extra={"event_id": sig.event_id, "why": why})
    return f"refused: {why}"


def _open(u: Upload, deps: Deps, run: int, sig: SourceSignal, breaks: list[dict[str, Any]], avail: datetime) -> str:
    item = source_break_item(
        u.channel, run=run, event_id=sig.event_id, media_time=sig.media,
        start=avail + timedelta(seconds=sig.media), duration=sig.duration, kind=sig.cue.command,
        cue_b64=sig.cue.base64, scte_type=sig.cue.filter_type or "", now=deps.now())
    if not deps.store.put_break(u.channel, item):
        return f"repeat of {item['id']}"
    breaks.append(item)
    metrics.add_metric(name="SourceBreaks", unit=MetricUnit.Count, value=1)
    logger.info("ad break from the source", extra={"break": item["id"], "media_time": item["media_time"],
                                                   "duration": item["duration"], "type": item["scte_type"]})
    return f"break {item['id']}"


def _close(u: Upload, deps: Deps, sig: SourceSignal, mine: list[dict[str, Any]], avail: datetime) -> str:
    """The source's return: the open break of this event id ends at the cue's splice point."""
    open_ = [b for b in mine if b.get("state") == SCHEDULED and float(b.get("media_time") or 0) < sig.media]
    if not open_:
        if any(b.get("state") == RETURNED and b.get("return_media") is not None and
               abs(float(b["return_media"]) - sig.media) < 0.5 for b in mine):
            return "repeat of a return"
        return _refuse(u, deps, sig, "no break of this event id is running before its splice time")
    b = max(open_, key=lambda x: float(x.get("media_time") or 0))
    at = float(b["media_time"])
    planned = float(b.get("duration") or 0)
    if planned > 0 and sig.media >= at + planned:
        return f"after the planned end of {b['id']}"  # the break already returned by itself (auto_return)
    changes = {"state": RETURNED, "returned_at": iso(avail + timedelta(seconds=sig.media)),
               "return_media": round(sig.media, 6), "scte35_in": sig.cue.base64}
    if not deps.store.update_break(u.channel, str(b["id"]), changes, SCHEDULED):
        return f"repeat of a return of {b['id']}"
    b.update(changes)
    logger.info("source return", extra={"break": b["id"], "return_media": changes["return_media"]})
    return f"return {b['id']}"


def _cancel(u: Upload, deps: Deps, sig: SourceSignal, mine: list[dict[str, Any]], chunk_start: float) -> str:
    pending = [b for b in mine if b.get("state") == SCHEDULED]
    if not pending:
        if any(b.get("state") == CANCELLED for b in mine):
            return "repeat of a cancel"
        return _refuse(u, deps, sig, "cancel for an event id with no pending break")
    b = max(pending, key=lambda x: float(x.get("media_time") or 0))
    if float(b["media_time"]) < chunk_start - PAST_TOLERANCE:
        return _refuse(u, deps, sig, f"cancel for break {b['id']} that began at {float(b['media_time']):.3f} s")
    if not deps.store.update_break(u.channel, str(b["id"]), {"state": CANCELLED, "cancelled_at": iso(deps.now())},
                                   SCHEDULED):
        return f"repeat of a cancel of {b['id']}"
    b["state"] = CANCELLED
    logger.info("source cancel", extra={"break": b["id"]})
    return f"cancel {b['id']}"
