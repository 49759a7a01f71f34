"""The ad-break schedule: items sk="BRK#{id}" that map 1:1 to chalicelib.media.timeline.AdBreak.

Every change is committed first and then announced through the Republisher port, so the
manifests pick it up at once instead of waiting for the next segment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..errors import ConflictError, ValidationError
from ..media.timeline import AdBreak
from ..obs import logger
from ..records import IDLE, RUNNING, STARTING, STOPPED, break_sk, channel_pk, iso, parse_iso, validate_id
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
    return parse_iso(str(item["start"])) + timedelta(seconds=float(item["duration"]))


def view(item: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    start = parse_iso(str(item["start"]))
    if item["state"] == CANCELLED:
        phase = "cancelled"
    elif now < start:
        phase = "pending"
    elif now < _end(item):
        phase = "active"
    else:
        phase = "ended"
    return {
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
            )
        )
    return tuple(sorted(out, key=lambda b: (b.start, b.splice_event_id)))
