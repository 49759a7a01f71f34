"""The packager: render a channel's manifests from its stored state and publish them.

Concurrency (several packager Lambdas, at-least-once messages):
- a channel is rendered by one packager at a time: a short DynamoDB lease on PUB;
- every request first bumps PUB.work; the lease holder releases only if `work` is unchanged
  since it read the state, else it renders again -- so a request that arrives while another
  packager renders is never lost, and a request that finds the lease taken can return at once;
- PUB.version is bumped conditionally (still our lease, version as read) before any object is
  written, so a packager whose lease expired mid-render cannot overwrite a newer publish.
Manifests are a pure function of the state (chalicelib.media), so rendering twice is harmless.

`republish` (ad break changed) and `finalize_vod` (stop) are the control plane's entry points.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ConcurrentUpdateError
from ..media.ladder import Ladder
from ..records import ChannelRecord, iso, parse_iso
from . import assemble, cdn
from .assemble import ChannelShape, Plan, PublishState
from .deps import Deps
from .objects import content_type, playlist_cache_control
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage
from .store import Lease

MAX_ROUNDS = 5  # renders per lease before handing the rest to a fresh message
FLUSH_DELAY = 30  # seconds before retrying parked invalidations (CloudFront takes ~1 min)


@dataclass(frozen=True)
class Outcome:
    channel: str
    status: str  # "published" | "unchanged" | "deferred" | "empty" | "unknown"
    published_seq: int = -1
    version: int = 0


def package_channels(messages: Iterable[PackageMessage], deps: Deps) -> list[Outcome]:
    """A packager batch: many messages, usually few channels; render each channel once."""
    reasons: dict[str, list[str]] = {}
    for m in messages:
        reasons.setdefault(m.channel, [])
        if m.reason:
            reasons[m.channel].append(m.reason)
    out = []
    failed: list[Exception] = []
    for channel, rs in reasons.items():
        final = "final" in rs
        rs = [r for r in rs if r != "final"]
        try:
            out.append(package(channel, deps, reasons=rs, final=final, force=final))
        except Exception as e:  # render the other channels, then fail the batch (retried)
            logger.exception("packaging failed", extra={"channel": channel})
            failed.append(e)
    if failed:
        raise failed[0]
    return out


def package(channel: str, deps: Deps, *, reasons: Iterable[str] = (), final: bool = False,
            force: bool = False) -> Outcome:
    with bind(channel=channel):
        return _package(channel, deps, list(reasons), final, force)


def republish(channel_id: str, reason: str) -> None:
    """Re-render and publish now, and invalidate the manifests (coalesced). Called by the control
    plane after an ad break is inserted, changed or cancelled, and on reset."""
    from . import deps as deps_mod

    package(channel_id, deps_mod.default(), reasons=[reason or "adbreak"], force=True)


def finalize_vod(channel_id: str) -> None:
    """Live-to-VOD on stop: ENDLIST playlists and a static MPD over the kept segments."""
    from . import deps as deps_mod

    package(channel_id, deps_mod.default(), reasons=["stop"], final=True, force=True)


def _package(channel: str, deps: Deps, reasons: list[str], final: bool, force: bool) -> Outcome:
    store = deps.store
    store.request_work(channel)
    owner = uuid.uuid4().hex
    lease = store.acquire(channel, owner, deps.now().timestamp(), deps.lease_seconds)
    if lease is None:
        # The holder will see our `work` bump and render again; it also sends parked paths.
        if reasons and deps.cdn is not None:
            store.park_paths(channel, _paths(channel, deps, reasons))
        if final:
            # The holder's next round reads PUB.ended and finalizes; the delayed message is the
            # safety net should the holder die first.
            store.mark_ended(channel)
            _send(deps, PackageMessage(channel, reason="final"), delay=int(deps.lease_seconds))
        return Outcome(channel, "deferred")
    outcome = Outcome(channel, "unknown")
    try:
        for rounds in range(1, MAX_ROUNDS + 1):
            outcome = _render_once(channel, deps, lease, reasons, final, force)
            reasons, force = [], False  # only the first round carries the request's extras
            if store.release(channel, lease, lease.work):
                return outcome
            if rounds == MAX_ROUNDS:
                break
            fresh = store.acquire(channel, owner, deps.now().timestamp(), deps.lease_seconds)
            if fresh is None:
                return outcome
            lease = fresh
        store.force_release(channel, lease)
        _send(deps, PackageMessage(channel))  # still busy: continue in a fresh invocation
        return outcome
    except ConcurrentUpdateError:
        # Our lease expired mid-render and another packager took over: it publishes.
        logger.warning("lost the packaging lease; the new holder publishes")
        return Outcome(channel, "deferred")
    except BaseException:
        store.force_release(channel, lease)
        raise


def _shape(channel: str, meta: ChannelRecord, pub: dict[str, Any], ladder: Ladder, deps: Deps) -> ChannelShape:
    st = deps.settings
    avail = meta.availability_start or str(pub.get("availability_start", ""))
    return ChannelShape(
        channel_id=channel,
        ladder=ladder,
        segment_duration=float(meta.segment_duration or st.segment_duration),
        gap_deadline=st.gap_deadline,
        availability_start=parse_iso(avail),
        live_window=float(meta.live_window or st.live_window),
        dvr_window=float(meta.dvr_window or st.dvr_window),
        marker_style=meta.marker_style,
    )


def _pub_state(pub: dict[str, Any]) -> PublishState:
    return PublishState(
        first_seq=int(pub["first_seq"]) if pub.get("first_seq") is not None else None,
        published_seq=int(pub.get("published_seq", -1)),
        gaps=frozenset(int(g) for g in pub.get("gaps") or ()),
        discontinuities_before=int(pub.get("discontinuities_before", 0)),
        first_start=float(pub["first_start"]) if pub.get("first_start") is not None else None,
        first_disc=bool(pub.get("first_disc", False)),
    )


def _render_once(channel: str, deps: Deps, lease: Lease, reasons: list[str], final: bool,
                 force: bool) -> Outcome:
    store, now = deps.store, deps.now()
    meta = store.channel(channel)
    pub = lease.pub
    if meta is None:
        return Outcome(channel, "unknown")
    final = final or bool(pub.get("ended"))  # once ended, late messages must not reopen it
    if pub.get("base") is None or not (meta.availability_start or pub.get("availability_start")):
        return Outcome(channel, "empty")  # no valid chunk yet this run: nothing to list
    ladder = deps.ladder(meta)
    shape = _shape(channel, meta, pub, ladder, deps)
    prev = _pub_state(pub)
    chunks = store.chunks(channel, prev.first_seq or 0, str(pub.get("run", "")))
    try:
        breaks = deps.ad_breaks(store.ad_break_items(channel))
    except ImportError:
        logger.warning("ad break reader unavailable; publishing without markers")
        breaks = ()
    p = assemble.plan(shape, chunks, prev, now, breaks, final=final)
    version = int(pub.get("version", 0))
    if p.changed or force:
        t0 = time.perf_counter()
        files = deps.render(p.timeline, now)
        t1 = time.perf_counter()
        extra: dict[str, Any] = {"published_at": iso(now)}
        if final:
            extra["ended"] = True
        version = store.commit(channel, lease, p.state, extra)
        _write(channel, deps, files, shape.segment_duration)
        timing = {"render_ms": round((t1 - t0) * 1000, 1), "write_ms": round((time.perf_counter() - t1) * 1000, 1),
                  "segments": len(p.timeline.segments)}
        _observe(channel, p, deps.now(), timing)
    _invalidate(channel, deps, pub, reasons, final)
    if p.recheck_at is not None and not final:
        # Nothing else may arrive to wake us when the tail waits for a missing chunk (the encoder
        # stopped, or the chunk is lost): come back when it turns into a GAP. One timer per
        # deadline, not one per packager run.
        _schedule(channel, deps, pub, "recheck_at", p.recheck_at.timestamp(), now.timestamp())
    status = "published" if (p.changed or force) else "unchanged"
    return Outcome(channel, status, p.state.published_seq, version)


def _write(channel: str, deps: Deps, files: dict[str, str], segment_duration: float) -> None:
    """Media playlists first, masters and MPD last: a player that sees a new master never finds
    a variant playlist older than it."""
    cache = playlist_cache_control(segment_duration)
    bucket = deps.settings.origin_bucket
    order = sorted(files, key=lambda k: ("/" not in k, k))
    for rel in order:
        key = f"{channel}/{rel}"
        deps.objects.put(bucket, key, files[rel].encode(), content_type(key), cache)


def _observe(channel: str, p: Plan, now: datetime, timing: dict[str, Any]) -> None:
    for c in p.newly_published:
        latency = (now - c.received_at).total_seconds()
        metrics.add_metric(name="SegmentLatency", unit=MetricUnit.Seconds, value=max(0.0, latency))
    if p.new_gaps:
        metrics.add_metric(name="GapSegments", unit=MetricUnit.Count, value=len(p.new_gaps))
        logger.warning("published GAP segments", extra={"gaps": list(p.new_gaps)})
    if p.newly_published:
        logger.info("published", extra={"published_seq": p.state.published_seq,
                                        "new": [c.seq for c in p.newly_published], **timing})


def _paths(channel: str, deps: Deps, reasons: Iterable[str]) -> list[str]:
    meta = deps.store.channel(channel)
    names = deps.ladder(meta).names
    out: list[str] = []
    for r in reasons:
        out += cdn.paths_for(_reason_kind(r), channel, names)
    return out


def _reason_kind(reason: str) -> str:
    """Free-text reasons from the control plane ("ad break b1 cancelled") -> an invalidation kind."""
    r = reason.lower()
    if "reset" in r:
        return "reset"
    if "stop" in r or "final" in r or "end" in r:
        return "stop"
    return "adbreak"


def _invalidate(channel: str, deps: Deps, pub: dict[str, Any], reasons: list[str], final: bool) -> None:
    if deps.cdn is None:
        return  # no distribution on this stage
    requested = _paths(channel, deps, reasons) if reasons else []
    pending = list(pub.get("pending_paths") or ())
    if not requested and not pending:
        return
    current = str(pub.get("invalidation_id") or "")
    in_flight = bool(current) and deps.cdn.in_progress(current)
    d = cdn.decide(requested, pending, in_flight)
    if d.send:
        ref = f"{channel}-{uuid.uuid4().hex[:12]}"
        inv = deps.cdn.invalidate(d.send, ref)
        deps.store.set_invalidation(channel, inv, [*d.send, *pending])
        logger.info("CloudFront invalidation sent", extra={"invalidation_id": inv, "paths": len(d.send)})
        metrics.add_metric(name="InvalidationPaths", unit=MetricUnit.Count, value=len(d.send))
    if d.park:
        deps.store.park_paths(channel, d.park)
        # Come back once the running invalidation should be done, even if no chunk arrives.
        now = deps.now().timestamp()
        _schedule(channel, deps, pub, "flush_at", now + FLUSH_DELAY, now)


def _schedule(channel: str, deps: Deps, pub: dict[str, Any], attr: str, when: float, now: float) -> None:
    """A delayed packager run at `when` (epoch s), unless one is already due at or before it."""
    pending = float(pub.get(attr) or 0)
    if now < pending <= when:
        return
    deps.store.set_timer(channel, attr, when)
    _send(deps, PackageMessage(channel), delay=max(1, math.ceil(when - now)))


def _send(deps: Deps, msg: PackageMessage, delay: int = 0) -> None:
    if deps.settings.package_queue_url:
        deps.queue.send(deps.settings.package_queue_url, msg.body(), delay=delay)
    else:
        logger.warning("no PACKAGE_QUEUE_URL: cannot schedule a packager re-run", extra={"delay": delay})


__all__ = ["ConcurrentUpdateError", "Outcome", "finalize_vod", "package", "package_channels", "republish"]
