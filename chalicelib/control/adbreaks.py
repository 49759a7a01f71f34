"""The ad-break schedule: items sk="BRK#{id}" that map 1:1 to chalicelib.media.timeline.AdBreak.

Every change is committed first and then announced through the Republisher port, so the
manifests pick it up at once instead of waiting for the next segment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import BreakStateError, ConflictError, ValidationError
from ..media.timeline import AdBreak
from ..obs import logger
from ..records import (
    IDLE,
    RUNNING,
    STARTING,
    STOPPED,
    break_sk,
    channel_pk,
    iso,
    parse_iso,
    run_name,
    validate_id,
)
from .models import CreateAdBreak
from .ports import Control

SCHEDULED, CANCELLED, RETURNED = "scheduled", "cancelled", "returned"
# Breaks can be scheduled ahead while the channel is idle or stopped; not while it is being
# torn down or broken.
BREAK_STATES = (IDLE, STARTING, RUNNING, STOPPED)
PAST_TOLERANCE = timedelta(seconds=5)  # clock skew between operator and API
MAX_AHEAD = timedelta(days=7)


def _end(item: Mapping[str, Any]) -> datetime:
    if item.get("returned_at"):
        return parse_iso(str(item["returned_at"]))
    if float(item["duration"]) <= 0:  # a source cue without a duration: open until the source's return
        return datetime.max.replace(tzinfo=UTC)
    return parse_iso(str(item["start"])) + timedelta(seconds=float(item["duration"]))


def _phase(item: Mapping[str, Any], now: datetime) -> str:
    if item["state"] == CANCELLED:
        return "cancelled"
    if now < parse_iso(str(item["start"])):
        return "pending"
    return "active" if now < _end(item) else "ended"


def view(item: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    phase = _phase(item, now)
    out = {
        "id": item["id"],
        "splice_event_id": int(item["splice_event_id"]),
        "start": item["start"],
        "duration": float(item["duration"]),
        "kind": item["kind"],
        "state": item["state"],
        "phase": phase,
        "returned_at": item.get("returned_at") or None,
        "created_at": item.get("created_at"),
        "source": item.get("source", "api"),
    }
    if item.get("source") == "source":
        out.update(scte35_out=item.get("scte35_out"), scte35_in=item.get("scte35_in") or None,
                   scte_type=item.get("scte_type"), run=item.get("run"), media_time=item.get("media_time"))
    return out


def create_ad_break(ctl: Control, channel_id: str, body: CreateAdBreak) -> dict[str, Any]:
    validate_id(channel_id)
    now = ctl.clock()
    start = now if body.start is None else body.start.astimezone(now.tzinfo)
    if start < now - PAST_TOLERANCE:
        raise ValidationError(f"field 'start': {iso(start)} is in the past (now is {iso(now)})")
    if start > now + MAX_AHEAD:
        raise ValidationError(f"field 'start': more than {MAX_AHEAD.days} days ahead")
    if not math.isfinite(body.duration):  # pragma: no cover - the model rejects it first
        raise ValidationError("field 'duration': must be finite")
    end = start + timedelta(seconds=body.duration)

    def make_item(event_id: int) -> dict[str, Any]:
        # Checked here, on every attempt: the store calls this after reading the channel's event-id
        # counter and commits only if the counter is unchanged, so no break can have been added
        # between this (consistent) read of the schedule and the write. Two concurrent requests for
        # overlapping breaks: one commits, the other retries, sees it, and gets the 409.
        for other in ctl.store.list_breaks(channel_id):
            if other["state"] == CANCELLED:
                continue
            if start < _end(other) and parse_iso(str(other["start"])) < end:
                raise ConflictError(
                    f"ad break overlaps break {other['id']!r} ({other['start']} for {float(other['duration'])}s)"
                )
        break_id = body.id or f"brk-{event_id}"
        return {
            "pk": channel_pk(channel_id),
            "sk": break_sk(break_id),
            "id": break_id,
            "splice_event_id": event_id,
            "start": iso(start),
            "duration": float(body.duration),
            "kind": body.kind,
            "state": SCHEDULED,
            "created_at": iso(now),
            "source": "api",
        }

    item = ctl.store.put_break_with_event_id(channel_id, make_item, BREAK_STATES)
    out = view(item, now)
    out["republished"] = _republish(ctl, channel_id, f"ad break {item['id']} created")
    return out


def list_ad_breaks(ctl: Control, channel_id: str) -> dict[str, Any]:
    validate_id(channel_id)
    ctl.store.get(channel_id)
    now = ctl.clock()
    items = sorted(ctl.store.list_breaks(channel_id), key=lambda i: (str(i["start"]), str(i["id"])))
    return {"channel_id": channel_id, "ad_breaks": [view(i, now) for i in items]}


def delete_ad_break(ctl: Control, channel_id: str, break_id: str) -> dict[str, Any]:
    """Cancel a break that has not started, or return early from one that is running."""
    validate_id(channel_id)
    validate_id(break_id, "ad break id")
    ctl.store.get(channel_id)
    now = ctl.clock()
    item = ctl.store.get_break(channel_id, break_id)
    if item["state"] != SCHEDULED:
        raise ConflictError(f"ad break {break_id!r} is already {item['state']}")
    start = parse_iso(str(item["start"]))
    if now < start:
        changes: dict[str, Any] = {"state": CANCELLED, "cancelled_at": iso(now)}
    elif now < _end(item):
        changes = {"state": RETURNED, "returned_at": iso(now)}
    else:
        raise ConflictError(f"ad break {break_id!r} already ended at {iso(_end(item))}")
    updated = ctl.store.update_break(channel_id, break_id, changes, expect_state=SCHEDULED)
    out = view(updated, now)
    out["republished"] = _republish(ctl, channel_id, f"ad break {break_id} {changes['state']}")
    return out


def return_ad_break(ctl: Control, channel_id: str, break_id: str) -> dict[str, Any]:
    """End a running break now (`POST .../return`): the in-point goes on the next segment boundary, with
    a splice_insert out_of_network=0 (or the time_signal's placement-opportunity end), CUE-IN, the
    DATERANGE again with END-DATE/DURATION and a DASH Event for the in-cue. A break that is not running
    (pending, ended, cancelled, already returned) is a 409 whose body names its state and phase."""
    validate_id(channel_id)
    validate_id(break_id, "ad break id")
    ctl.store.get(channel_id)
    now = ctl.clock()
    item = ctl.store.get_break(channel_id, break_id)
    phase = _phase(item, now)
    if item["state"] != SCHEDULED or phase != "active":
        raise BreakStateError(f"ad break {break_id!r} is not running: it is {item['state']} ({phase}); only a "
                              "running break can return early", id=break_id, state=item["state"], phase=phase)
    try:
        updated = ctl.store.update_break(channel_id, break_id, {"state": RETURNED, "returned_at": iso(now)},
                                         expect_state=SCHEDULED)
    except ConflictError:  # returned or cancelled between the read and the write
        current = ctl.store.get_break(channel_id, break_id)
        raise BreakStateError(f"ad break {break_id!r} is not running: it is {current['state']}", id=break_id,
                              state=current["state"], phase=_phase(current, now)) from None
    out = view(updated, now)
    out["republished"] = _republish(ctl, channel_id, f"ad break {break_id} returned")
    return out


def source_break_item(channel_id: str, *, run: int, event_id: int, media_time: float, start: datetime,
                      duration: float | None, kind: str, cue_b64: str, scte_type: str, now: datetime) -> dict[str, Any]:
    """A BRK# item for a break the source signalled: the same record an API break is (the packager and
    the worker read both alike), with the encoder's cue kept verbatim and its splice point on the run's
    media clock. The id is a pure function of the cue (run, event id, splice time): the same cue read from
    two chunks at once makes one break."""
    break_id = f"src{run}-{event_id}-{round(media_time * 1000)}"
    return {
        "pk": channel_pk(channel_id),
        "sk": break_sk(break_id),
        "id": break_id,
        "splice_event_id": int(event_id),
        "start": iso(start),
        "duration": float(duration or 0.0),
        "kind": kind if kind in ("splice_insert", "time_signal") else "splice_insert",
        "state": SCHEDULED,
        "created_at": iso(now),
        "source": "source",
        "scte35_out": cue_b64,
        "scte_type": scte_type,
        "run": int(run),
        "media_time": round(float(media_time), 6),
    }


def _republish(ctl: Control, channel_id: str, reason: str) -> bool:
    # The change is committed; if publishing fails now the next segment's publish carries it,
    # so the request still succeeds and says the manifests are not updated yet.
    try:
        ctl.republisher.republish(channel_id, reason)
        return True
    except Exception:
        logger.exception("republish failed", extra={"channel": channel_id, "reason": reason})
        return False


def to_timeline_breaks(items: Iterable[Mapping[str, Any]]) -> tuple[AdBreak, ...]:
    """BRK items (as read from DynamoDB, numbers as Decimal or float) -> timeline AdBreaks, by start.

    A break cancelled before it started appears as cancelled (the packager drops it); an early
    return keeps its returned_at so the in-point lands where the operator ended it.
    """
    out = []
    for item in items:
        out.append(
            AdBreak(
                id=str(item["id"]),
                splice_event_id=int(item["splice_event_id"]),
                start=parse_iso(str(item["start"])),
                duration=float(item["duration"]),
                kind=str(item.get("kind", "splice_insert")),
                cancelled=item.get("state") == CANCELLED,
                returned_at=parse_iso(str(item["returned_at"])) if item.get("returned_at") else None,
                source=str(item.get("source", "api")),
                scte35_out=item.get("scte35_out"),
                scte35_in=item.get("scte35_in"),
                run=run_name(int(item["run"])) if item.get("run") is not None else "",
                media_time=float(item["media_time"]) if item.get("media_time") is not None else None,
                return_media=float(item["return_media"]) if item.get("return_media") is not None else None,
            )
        )
    return tuple(sorted(out, key=lambda b: (b.start, b.splice_event_id)))
