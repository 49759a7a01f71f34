"""The packager: decide every slot (media or slate), render a channel's manifests from its stored state
and publish them.

Concurrency (several packager Lambdas, at-least-once messages):
- a channel is rendered by one packager at a time: a short DynamoDB lease on PUB;
- every request first bumps PUB.work; the lease holder releases only if `work` is unchanged
  since it read the state, else it renders again -- so a request that arrives while another
  packager renders is never lost, and a request that finds the lease taken can return at once;
- PUB.version is bumped conditionally (still our lease, version as read) before any manifest is
  written, so a packager whose lease expired mid-render cannot overwrite a newer publish;
- a slot becomes slate only through its conditional claim (SEG#.fill), and slate segments are
  written once (If-None-Match), so nothing served as immutable is ever rewritten.
Manifests are a pure function of the state (chalicelib.media), so rendering twice is harmless.

`republish` (ad break changed), `finalize_vod` (stop: seal the run, write its VOD) and `end_event`
(delete: ENDLIST on the live playlists) are the control plane's entry points.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..errors import ConcurrentUpdateError
from ..media import adbreaks as media_breaks
from ..media import dash, hls
from ..media.ladder import Ladder
from ..media.timeline import Placement, Timeline
from ..records import STOPPING, ChannelRecord, iso, parse_iso, run_name
from . import admarkers, assemble, cdn
from .assemble import SLATE, ChannelShape, ChunkState, Plan, PublishState, RunInfo, SlotClaim
from .clock import input_loss_wait
from .deps import Deps
from .objects import IMMUTABLE, content_type, playlist_cache_control
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage
from .store import Lease, publish_state, seen_seqs

MAX_ROUNDS = 5  # renders per lease before handing the rest to a fresh message
MAX_CLAIMS = 30  # slate claims per render (a long outage catches up over a few renders)
FLUSH_DELAY = 30  # seconds before retrying parked invalidations (CloudFront takes ~1 min)
SEAL_GRACE = 6.0  # seconds a stopping run waits for chunks still in flight
# SQS delays are whole seconds: a timer is sent rounded down, and a packager that renders within this
# long of a deadline waits out the rest (a few times at most) instead of re-queueing a 1 s delay, so a
# slate is listed when it is due rather than up to a second after.
SETTLE_SECONDS = 1.0
SETTLE_ROUNDS = 3
# Before input loss takes a slot the packager looks for the slot's upload in the ingest bucket: one that is
# there (written since the run started) is a chunk whose event has not reached ingest yet (S3 -> Lambda
# delivery, a cold start on a loaded machine: 1.3 s in the soak), and the slot is left to it for this long
# after the upload. Ingest notes it (`seen`) before anything else, and from then on input loss never takes
# the slot; if that never happens (ingest failing: its async retries come minutes later), input loss goes on.
INGEST_HOLD = timedelta(seconds=10)


@dataclass(frozen=True)
class Outcome:
    channel: str
    status: str  # "published" | "unchanged" | "deferred" | "empty" | "unknown" | "ended"
    published_seq: int = -1
    version: int = 0
    sealed: bool = False
    recheck_at: float = 0.0  # epoch s when a waiting slot is decided (0: nothing waits)


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
        try:
            out.append(package(channel, deps, reasons=[r for r in rs if r != "final"]))
        except Exception as e:  # render the other channels, then fail the batch (retried)
            logger.exception("packaging failed", extra={"channel": channel})
            failed.append(e)
    if failed:
        raise failed[0]
    return out


def package(channel: str, deps: Deps, *, reasons: Iterable[str] = (), force: bool = False) -> Outcome:
    with bind(channel=channel):
        started = deps.now().timestamp()
        outcome = _package(channel, deps, list(reasons), force)
        for _ in range(SETTLE_ROUNDS):
            # A slot falls due within a second of when this render looked (a timer sent rounded down woke us,
            # or this render came just before it): decide it then, here, even if the render itself ran past
            # the deadline (the timer that woke us is spent: nobody else comes back for it). Whoever renders
            # in the last second before a deadline waits it out, so a timer consumed early by a packager that
            # found the lease taken is never lost.
            due = outcome.recheck_at
            if not started < due <= started + SETTLE_SECONDS:
                break
            left = due - deps.now().timestamp()
            if left > 0:
                deps.sleep(left + 0.01)
            started = deps.now().timestamp()
            outcome = _package(channel, deps, [], False)
        return outcome


def republish(channel_id: str, reason: str) -> None:
    """Re-render and publish now, and invalidate the manifests (coalesced). Called by the control
    plane after an ad break is inserted, changed or cancelled, and on reset."""
    from . import deps as deps_mod

    package(channel_id, deps_mod.default(), reasons=[reason or "adbreak"], force=True)


def finalize_vod(channel_id: str, deps: Deps | None = None, timeout: float = 30.0) -> bool:
    """Stop: seal the channel's current run (what is in flight gets SEAL_GRACE seconds, holes up to the
    last received chunk become slate, a straggler after that is dropped and counted) and write the
    run's VOD playlists and static MPD, once. The live playlists stay open: a later start continues
    them (EXT-X-DISCONTINUITY, a new DASH Period). True once the run is sealed."""
    from . import deps as deps_mod

    d = deps or deps_mod.default()
    meta = d.store.channel(channel_id)
    if meta is None:
        return True
    d.store.request_seal(channel_id, meta.current_run, d.now())
    deadline = time.monotonic() + timeout
    while True:
        out = package(channel_id, d, reasons=["stop"], force=True)
        if out.sealed or out.status in ("empty", "unknown", "ended"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def end_event(channel_id: str, deps: Deps | None = None) -> None:
    """Delete: the event is over for good. The live playlists get EXT-X-ENDLIST and the live MPD its
    end (a duration, no more updates); nothing is published for this channel afterwards."""
    from . import deps as deps_mod

    d = deps or deps_mod.default()
    d.store.request_end(channel_id)
    package(channel_id, d, reasons=["stop"], force=True)


def _package(channel: str, deps: Deps, reasons: list[str], force: bool) -> Outcome:
    store = deps.store
    owner = uuid.uuid4().hex
    lease = store.acquire(channel, owner, deps.now().timestamp(), deps.lease_seconds, request=True)
    if lease is None:
        # Held: count our request where the holder looks before it releases, then try once more (it may
        # have released between the two writes, and then nobody else would render our work).
        store.request_work(channel)
        lease = store.acquire(channel, owner, deps.now().timestamp(), deps.lease_seconds)
    if lease is None:
        # The holder will see our `work` bump and render again; it also sends parked paths.
        if reasons and deps.cdn is not None:
            store.park_paths(channel, _paths(channel, deps, reasons))
        logger.info("lease held: the holder renders this request")
        return Outcome(channel, "deferred")
    outcome = Outcome(channel, "unknown")
    try:
        for rounds in range(1, MAX_ROUNDS + 1):
            outcome = _render_once(channel, deps, lease, reasons, force)
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


def _shape(channel: str, meta: ChannelRecord, ladder: Ladder, deps: Deps, runs: Iterable[int]) -> ChannelShape:
    st = deps.settings
    return ChannelShape(
        channel_id=channel,
        ladder=ladder,
        segment_duration=float(meta.segment_duration or st.segment_duration),
        live_window=float(meta.live_window or st.live_window),
        dvr_window=float(meta.dvr_window or st.dvr_window),
        marker_style=meta.marker_style,
        ad_markers=admarkers.settings(meta),
        slate_wait=float(meta.slate_wait) if meta.slate_wait else st.slate_wait,
        input_loss_wait=input_loss_wait(meta, st),
        gap_mode=meta.missing_media == "gap",
        run_names={r: run_name(r) for r in runs},
    )


# --- what the packager remembers between invocations (a warm Lambda renders a channel every chunk) ---
# Published chunk facts never change, so they are kept per (channel, run) and only the unpublished
# tail is read again: one SEG# query per render instead of the whole DVR window. RUN# facts change once
# (slate ready), and a run that is not ready is read again.
_CHUNKS: dict[tuple[str, int], dict[int, ChunkState]] = {}
_RUNS: dict[str, dict[int, RunInfo]] = {}
_WRITTEN: dict[str, str] = {}  # origin key -> sha of the manifest text this process last wrote there
_VERSIONS: dict[str, int] = {}  # channel -> PUB version this process last committed
_SLATES: dict[tuple[str, int, str], bytes] = {}  # (channel, run, rendition) -> slate template
_HELD: dict[tuple[str, int, int], datetime] = {}  # (channel, run, seq) -> until when input loss leaves the slot


def reset_caches() -> None:
    """Forget everything remembered between invocations (tests; a process that must start afresh)."""
    for cache in (_CHUNKS, _RUNS, _WRITTEN, _VERSIONS, _SLATES, _HELD):
        cache.clear()


def _runs(channel: str, deps: Deps, current: int) -> dict[int, RunInfo]:
    known = _RUNS.get(channel)
    if known is None or current not in known or not known[current].slate_ready:
        known = deps.store.runs(channel)
        _RUNS[channel] = known
    return known


def _chunks(channel: str, deps: Deps, prev: PublishState, current: int) -> dict[int, dict[int, ChunkState]]:
    out: dict[int, dict[int, ChunkState]] = {}
    states = {r.run: r for r in prev.runs}
    for rn in sorted(set(states) | {current}):
        st = states.get(rn)
        cached = _CHUNKS.get((channel, rn), {})
        if st is not None:
            lo = st.first_seq
            have = all(s in cached for s in range(lo, st.last_seq + 1))
            if have and st.sealed:
                out[rn] = {s: c for s, c in cached.items() if s >= lo}
                continue
            if have:
                fresh = deps.store.chunks(channel, rn, st.last_seq + 1)
                merged = {s: c for s, c in cached.items() if lo <= s <= st.last_seq}
                merged.update(fresh)
                out[rn] = merged
                continue
            out[rn] = deps.store.chunks(channel, rn, lo)
        else:
            out[rn] = deps.store.chunks(channel, rn, 0)
    return out


def _remember(channel: str, state: PublishState, chunks: Mapping[int, Mapping[int, ChunkState]]) -> None:
    for r in state.runs:
        _CHUNKS[(channel, r.run)] = {s: c for s, c in chunks.get(r.run, {}).items() if r.first_seq <= s <= r.last_seq}
    live = {r.run for r in state.runs}
    for key in [k for k in _CHUNKS if k[0] == channel and k[1] not in live]:
        del _CHUNKS[key]


def _render_once(channel: str, deps: Deps, lease: Lease, reasons: list[str], force: bool) -> Outcome:
    store, now = deps.store, deps.now()
    meta = store.channel(channel)
    pub = lease.pub
    if meta is None:
        return Outcome(channel, "unknown")
    prev = publish_state(pub)
    if prev.ended:
        return Outcome(channel, "ended", sealed=True)
    current = meta.current_run
    runs = _runs(channel, deps, current)
    if current not in runs and not prev.runs:
        return Outcome(channel, "empty")  # no valid chunk yet in any run: nothing to list
    ladder = deps.ladder(meta)
    shape = _shape(channel, meta, ladder, deps, set(runs) | {r.run for r in prev.runs})
    chunks = _chunks(channel, deps, prev, current)
    try:
        breaks = deps.ad_breaks(store.ad_break_items(channel))
    except ImportError:
        logger.warning("ad break reader unavailable; publishing without markers")
        breaks = ()
    seal_run = int(pub["seal_run"]) if pub.get("seal_run") is not None else None
    if seal_run is None and meta.state == STOPPING:
        seal_run = current
    stop_at = {seal_run: parse_iso(str(pub["seal_at"]))} if seal_run is not None and pub.get("seal_at") else {}
    end = bool(pub.get("end_requested"))
    kwargs: dict[str, Any] = {"current": current if current in runs else None,
                              "seal": [seal_run] if seal_run is not None else [],
                              "seal_grace": SEAL_GRACE, "stop_at": stop_at, "end_event": end,
                              "seen": seen_seqs(meta.seen), "held": _held(channel, now)}
    if meta.part_duration:  # low-latency: full segments from their parts, slate for missing parts
        from . import parts as ll_parts

        ll_parts.before_plan(channel, deps, meta, ladder, shape, runs, prev, chunks, now, pub,
                             seal_deadline=(stop_at[seal_run] + timedelta(seconds=SEAL_GRACE))
                             if seal_run == current and seal_run in stop_at else None)
    p = assemble.plan(shape, runs, chunks, prev, now, breaks, **kwargs)
    claimed = 0
    while p.claims and claimed < MAX_CLAIMS:
        progressed = False
        for claim in p.claims:
            if claim.reason == "input loss" and _upload_in(channel, deps, claim, runs, chunks, now):
                progressed = True  # held: plan again (it waits for ingest, and says when to look again)
                continue
            if _slate_slot(channel, deps, ladder, shape, claim, now, chunks):
                claimed += 1
                progressed = True
        if not progressed:
            break
        kwargs["held"] = _held(channel, now)
        p = assemble.plan(shape, runs, chunks, prev, now, breaks, **kwargs)
    for rn, seq in p.late:
        if store.mark_late(channel, rn, seq):
            metrics.add_metric(name="LateChunks", unit=MetricUnit.Count, value=1)
            store.count(channel, "late_chunks", f"chunk {seq} of run {rn} came after its slot was published")
    version = int(pub.get("version", 0))
    was_sealed = {r.run for r in prev.runs if r.sealed}
    sealed_now = [r.run for r in p.state.runs if r.sealed and r.run not in was_sealed]
    changed = p.changed or force
    if changed:
        t0 = time.perf_counter()
        tl = p.timeline
        placed = hls.prepared(tl).breaks  # shared with the render below (same timeline object)
        state = replace(p.state, placements=_placements(p.state, placed, tl))
        files = deps.render(tl, now)
        digests = {rel: _digest(text.encode()) for rel, text in files.items()}
        t1 = time.perf_counter()
        version = store.commit(channel, lease, state, {"published_at": iso(now), "written": digests})
        # Unchanged manifests are skipped only where what the origin holds is known: PUB.written, when the
        # previous packager finished its writes (it released the lease), or else what this process wrote,
        # if nobody else published since its last commit.
        held = lease.written
        if not held and _VERSIONS.get(channel) == lease.version:
            held = {rel: _WRITTEN[f"{channel}/{rel}"] for rel in files if f"{channel}/{rel}" in _WRITTEN}
        written = _write(channel, deps, files, shape.segment_duration, held)
        _VERSIONS[channel] = version
        for rn in sealed_now:
            _write_vod(channel, deps, tl, shape, rn, now)
        timing = {"render_ms": round((t1 - t0) * 1000, 1), "write_ms": round((time.perf_counter() - t1) * 1000, 1),
                  "segments": len(tl.segments), "objects": written}
        _observe(channel, p, deps.now(), timing)
        _remember(channel, state, chunks)
    if seal_run is not None and any(r.run == seal_run and r.sealed for r in p.state.runs):
        store.clear_seal(channel, seal_run)
    _invalidate(channel, deps, pub, reasons)
    if p.recheck_at is not None:
        # Nothing else may arrive to wake us when a slot waits (the encoder stopped, a chunk is lost,
        # the slate is still rendering): come back when it can be decided. One timer per deadline.
        _schedule(channel, deps, pub, "recheck_at", p.recheck_at.timestamp(), now.timestamp())
    last = max((r.msn_base + r.last_seq for r in p.state.runs), default=-1)
    sealed = seal_run is not None and any(r.run == seal_run and r.sealed for r in p.state.runs)
    return Outcome(channel, "published" if changed else "unchanged", last, version, sealed or p.state.ended,
                   p.recheck_at.timestamp() if p.recheck_at is not None else 0.0)


def _held(channel: str, now: datetime) -> dict[int, dict[int, datetime]]:
    """Slots of the channel whose upload was found in the ingest bucket: {run: {seq: held until}}."""
    out: dict[int, dict[int, datetime]] = {}
    for (ch, run, seq), until in list(_HELD.items()):
        if until < now - timedelta(minutes=5):
            del _HELD[(ch, run, seq)]  # long decided
        elif ch == channel:
            out.setdefault(run, {})[seq] = until
    return out


def _upload_in(channel: str, deps: Deps, claim: SlotClaim, runs: Mapping[int, RunInfo],
               chunks: Mapping[int, Mapping[int, ChunkState]], now: datetime) -> bool:
    """Before input loss takes a slot: is its chunk in the ingest bucket after all (uploaded, its event not
    at ingest yet)? One HEAD per decision. Keys carry no run, so only an object written since the run
    started counts (after a restart, the previous run's object of that seq is still there). True: leave
    the slot until INGEST_HOLD after the upload (remembered, so the HEAD is not repeated)."""
    key = (channel, claim.run, claim.seq)
    if key in _HELD:
        return _HELD[key] > now
    info = runs.get(claim.run)
    if info is None:
        return False
    run_chunks = chunks.get(claim.run, {})
    ext = next((run_chunks[s].ext for s in sorted(run_chunks, reverse=True) if run_chunks[s].ext), "") or "ts"
    modified = deps.objects.modified(deps.settings.ingest_bucket, f"{channel}/{claim.seq:08d}.{ext}")
    started = info.started_at or info.availability_start
    # Last-Modified has whole seconds: an upload in the run's first second counts.
    if modified is None or modified < started.replace(microsecond=0):
        return False
    # From when the upload came, by our clock (never later than now, should S3's clock run ahead of ours).
    _HELD[key] = until = min(modified, now) + INGEST_HOLD
    logger.info("input loss holds off: the slot's upload is in the ingest bucket, not yet at ingest",
                extra={"run": claim.run, "seq": claim.seq, "uploaded": iso(modified), "until": iso(until)})
    return until > now


def _slate_slot(channel: str, deps: Deps, ladder: Ladder, shape: ChannelShape, claim: SlotClaim, now: datetime,
                chunks: dict[int, dict[int, ChunkState]]) -> bool:
    """Claim one slot for slate, write its slate segment in every rendition, and record it in `chunks`
    so the next plan publishes it. False: a worker owns the slot (its media is on the way)."""
    from ..transcode import slate

    store = deps.store
    if not store.claim_slate(channel, claim, now, now - assemble.STALE_CLAIM):
        item = store.chunk(channel, claim.run, claim.seq)
        if item is not None:
            from .store import chunk_state

            chunks.setdefault(claim.run, {})[claim.seq] = chunk_state(item)
        return False
    run = shape.name(claim.run)
    bucket = deps.settings.origin_bucket
    iframes: dict[str, list[list[int]]] = {}
    sequence = claim.seq * 64 + 1
    for name in ladder.names:
        template = _slate_template(channel, deps, claim.run, run, name)
        if name == ladder.audio.name:
            body = slate.compose_audio(template, claim.a_dur // 1024, claim.a_start, sequence)
        else:
            frames = claim.v_dur // ladder.frame_ticks
            body, ranges = slate.compose_video(template, frames, claim.v_start, sequence)
            iframes[name] = [list(r) for r in ranges]
        key = f"{channel}/{name}/{run}/{claim.seq:08d}.m4s"
        # Write-once: if a worker whose claim went stale managed to upload after all, its media stays.
        deps.objects.put_new(bucket, key, body, content_type(key, name, ladder.audio.name), IMMUTABLE)
    store.record_slate(channel, claim.run, claim.seq, iframes)
    existing = chunks.setdefault(claim.run, {}).get(claim.seq)
    received = existing.received_at if existing is not None else now
    chunks[claim.run][claim.seq] = ChunkState(
        seq=claim.seq, status=existing.status if existing else assemble.RECEIVED, received_at=received,
        v_start=claim.v_start, v_dur=claim.v_dur, a_start=claim.a_start, a_dur=claim.a_dur, fill=SLATE,
        claimed_at=now, iframes={k: tuple((x[0], x[1], x[2]) for x in v) for k, v in iframes.items()}, run=claim.run,
        done=existing.done if existing else frozenset(), late=existing.late if existing else False)
    metrics.add_metric(name="SlateSegments", unit=MetricUnit.Count, value=1)
    if claim.reason == "input loss":  # nothing had come for it: the encoder's side (an alarm can tell)
        metrics.add_metric(name="InputLossSegments", unit=MetricUnit.Count, value=1)
    store.count(channel, "slate_segments", f"chunk {claim.seq} of run {claim.run}: {claim.reason}")
    logger.warning("slot published as slate", extra={"run": claim.run, "seq": claim.seq, "reason": claim.reason})
    return True


def _slate_template(channel: str, deps: Deps, run_no: int, run: str, rendition: str) -> bytes:
    key = (channel, run_no, rendition)
    data = _SLATES.get(key)
    if data is None:
        from .worker import SLATE_PREFIX

        got = deps.objects.get(deps.settings.origin_bucket, f"{channel}/{SLATE_PREFIX}/{run}/{rendition}.mp4")
        if got is None:
            raise ConcurrentUpdateError(f"slate template of {channel} {run} {rendition} is missing")
        data = _SLATES[key] = got
    return data


def _placements(state: PublishState, placed: list[media_breaks.PlacedBreak], tl: Timeline) -> dict[str, Placement]:
    """Keep where each break was first published, so it still renders after its out segment left."""
    out = dict(state.placements)
    runs = {s.number: s.run for s in tl.segments}
    for b in placed:
        if b.announced:
            continue
        old = out.get(b.id)
        if old is None or (old.in_seq is None and b.in_seq is not None):
            out[b.id] = b.placement(runs.get(b.out_seq, old.out_run if old else ""),
                                    runs.get(b.in_seq, "") if b.in_seq is not None else "")
    return out


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _write(channel: str, deps: Deps, files: Mapping[str, str], segment_duration: float,
           held: Mapping[str, str] | None = None) -> int:
    """Media playlists first, masters and MPD last: a player that sees a new master never finds
    a variant playlist older than it. Objects whose text is known to be there already (`held`: path ->
    digest of what the origin holds) are not written again."""
    cache = playlist_cache_control(segment_duration)
    bucket = deps.settings.origin_bucket
    order = sorted(files, key=lambda k: ("/" not in k, k))
    written = 0
    for rel in order:
        key = f"{channel}/{rel}"
        body = files[rel].encode()
        digest = _digest(body)
        if held and held.get(rel) == digest:
            _WRITTEN[key] = digest
            continue
        deps.objects.put(bucket, key, body, content_type(key), cache)
        _WRITTEN[key] = digest
        written += 1
    return written


def _write_vod(channel: str, deps: Deps, tl: Timeline, shape: ChannelShape, rn: int, now: datetime) -> None:
    """A sealed run's VOD: HLS with EXT-X-PLAYLIST-TYPE:VOD and ENDLIST, a static MPD; new URLs,
    written once (If-None-Match), so a retry or a straggler can never change them."""
    run = shape.name(rn)
    segs = tuple(s for s in tl.segments if s.run == run)
    if not segs:
        return
    periods = tuple(p for p in tl.periods if p.run == run)
    vod = replace(tl, segments=segs, periods=periods, ended=True, live_window=math.inf, dvr_window=math.inf,
                  discontinuities_before=0, announce_breaks=False)
    first = segs[0]
    if first.discontinuity:
        vod = replace(vod, segments=(replace(first, discontinuity=False), *segs[1:]))
    files = hls.render_vod(vod, run)
    files[f"vod-{run}.mpd"] = dash.render_mpd(vod, now, vod=True)
    bucket = deps.settings.origin_bucket
    for rel in sorted(files, key=lambda k: ("/" not in k, k)):
        key = f"{channel}/{rel}"
        deps.objects.put_new(bucket, key, files[rel].encode(), content_type(key), IMMUTABLE)
    logger.info("run published as VOD", extra={"run": run, "segments": len(segs)})


def _observe(channel: str, p: Plan, now: datetime, timing: dict[str, Any]) -> None:
    for c in p.newly_published:
        latency = (now - c.received_at).total_seconds()
        metrics.add_metric(name="SegmentLatency", unit=MetricUnit.Seconds, value=max(0.0, latency))
    if p.new_slates:
        logger.warning("published slate segments", extra={"slates": [list(x) for x in p.new_slates]})
    if p.newly_published or p.new_slates:
        logger.info("published", extra={"new": [c.seq for c in p.newly_published], **timing})


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


def _invalidate(channel: str, deps: Deps, pub: dict[str, Any], reasons: list[str]) -> None:
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
    """A delayed packager run at `when` (epoch s), unless one already pending comes back for it.

    Delays are rounded down (SQS DelaySeconds is whole seconds; the packager a timer wakes waits out the
    fraction left, package(), so a slot is decided when due, not up to a second late), so a timer comes
    back up to a second before the deadline it was sent for (`attr`). Within that second the pending timer
    may be the very one that woke this packager, spent: if the slot it was for is decided already (its
    chunk came) and the next deadline is further away, this packager sends the next timer itself. (It
    used to take the spent timer for one yet to come, and nobody did: soak seed 7, run 2, a missing chunk
    waited 1.6 s more for the later-chunk rule instead of input loss.) A deadline within a second of now
    needs no second timer then: whoever renders now waits it out (package())."""
    pending = float(pub.get(attr) or 0)
    if now < pending <= when and (now < pending - SETTLE_SECONDS or when - now <= SETTLE_SECONDS):
        logger.info("packager timer pending",
                    extra={"timer": attr, "due": round(when, 3), "pending": round(pending, 3)})
        return
    delay = max(0, math.floor(when - now))
    deps.store.set_timer(channel, attr, when)
    _send(deps, PackageMessage(channel), delay=delay)
    logger.info("packager timer sent", extra={"timer": attr, "due": round(when, 3), "delay": delay})


def _send(deps: Deps, msg: PackageMessage, delay: int = 0) -> None:
    if deps.settings.package_queue_url:
        deps.queue.send(deps.settings.package_queue_url, msg.body(), delay=delay)
    else:
        logger.warning("no PACKAGE_QUEUE_URL: cannot schedule a packager re-run", extra={"delay": delay})


__all__ = ["ConcurrentUpdateError", "Outcome", "end_event", "finalize_vod", "package", "package_channels",
           "republish"]
