"""Use case `on_segment_uploaded`: a chunk landed in the ingest bucket.

validate key + channel -> probe -> place on the run's grids -> record (conditional) -> fan out
transcode jobs. At-least-once delivery is handled twice over:
1. Powertools Idempotency keyed on (channel, seq, etag, run) short-circuits redeliveries of an event
   that already completed (its stored result is returned, nothing runs);
2. the SEG# item's conditional put is the ground truth even after idempotency records expire:
   same ETag = duplicate, other ETag = conflict (logged, counted, not processed), a slot already
   published as slate = late (counted, dropped).
A chunk is recorded before its jobs are sent and flagged `queued` after, so a crash in between
re-sends the jobs on redelivery instead of dropping them (workers are idempotent).

What is recorded is exactly what was accepted: the object's version (or, unversioned, its ETag),
which the worker then downloads by, so a conflicting re-upload never reaches the output.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import InvalidMediaError, NotFoundError
from ..media import grid
from ..media.timeline import round_half_up
from ..records import INGEST_STATES, ChannelRecord, iso
from ..transcode import audio as audio_plan
from .assemble import INVALID, RECEIVED
from .clock import base_ticks, input_loss_wait, media_ticks
from .deps import Deps
from .events import Rejection, Upload
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage, TranscodeMessage

# An upload this far beyond the newest seq is hostile or a misconfigured encoder: accepting it
# would make every chunk in between a slate.
MAX_AHEAD = 900
MAX_EVENT_SKEW = 300.0  # seconds


def handle(items: list[Any], deps: Deps) -> list[str]:
    """Process a batch of parsed events; one bad item never fails the others."""
    out = []
    inline = True
    for item in items:
        if isinstance(item, Rejection):
            out.append(reject_key(item))
        elif isinstance(item, Upload) and item.part >= 0:
            # a low-latency part: transcoded here, the rest of a batch in parallel workers
            from . import parts

            out.append(parts.on_part_uploaded(item, deps, inline=inline))
            inline = False
        elif isinstance(item, Upload):
            out.append(idempotent_upload(item, deps))
        else:  # an encoder's own HLS (playlist or segment): chalicelib.pipeline.hlsingest
            from . import hlsingest

            out.append(hlsingest.handle(item, deps))
    return out


def reject_key(r: Rejection) -> str:
    logger.warning("ingest key rejected", extra={"key": r.key, "reason": r.reason})
    metrics.add_metric(name="RejectedChunks", unit=MetricUnit.Count, value=1)
    return f"rejected: {r.reason}"


def idempotent_upload(u: Upload, deps: Deps) -> str:
    """`on_upload` behind Powertools Idempotency, keyed on channel, seq, ETag and the channel's run:
    the same file pushed again after a stop and start is a new chunk of a new run, not a replay."""
    meta = deps.store.channel(u.channel)  # read once: the key needs its run, the use case the rest
    layer = deps.extra.get("idempotency")
    if layer is None:
        return on_upload(u, deps, meta)
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    run = meta.current_run if meta is not None else 0
    config = IdempotencyConfig(event_key_jmespath="[channel, seq, etag, run]", expires_after_seconds=24 * 3600,
                               raise_on_no_idempotency_key=True)
    context = deps.extra.get("lambda_context")
    if context is not None:
        config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="event", persistence_store=layer, config=config)
    def once(event: dict[str, Any]) -> str:
        return on_upload(u, deps, meta)

    with warnings.catch_warnings():
        if context is None:  # outside Lambda (tests, scripts) there is no remaining time to read
            warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
        return str(once(event={**{k: v for k, v in asdict(u).items() if k != "event_time"}, "run": run}))


def idempotency_layer(table_name: str) -> Any:
    """Records live in the pipeline table: pk = "IDEM#ingest", sk = the hashed key."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table_name, key_attr="pk", sort_key_attr="sk",
                                    static_pk_value="IDEM#ingest", expiry_attr="expires_at")


def on_upload(u: Upload, deps: Deps, meta: ChannelRecord | None) -> str:
    """`meta`: the channel's record as read for this upload (None: unknown channel)."""
    with bind(channel=u.channel, seq=u.seq, correlation_id=_correlation(u)):
        return _on_upload(u, deps, meta)


def _correlation(u: Upload) -> str:
    """A stable id for everything this upload causes: the same for every redelivery of its event."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{u.bucket}/{u.key}#{u.etag}").hex[:16]


def _on_upload(u: Upload, deps: Deps, meta: ChannelRecord | None) -> str:
    store, st = deps.store, deps.settings
    if meta is None:
        return _reject(deps, u, "unknown channel", count_on_channel=False)
    if meta.state not in INGEST_STATES:
        return _reject(deps, u, f"channel is {meta.state}, not accepting chunks")
    run = meta.current_run
    if meta.last_seq >= 0 and meta.last_run == run and u.seq > meta.last_seq + MAX_AHEAD:
        return _reject(deps, u, f"seq {u.seq} is more than {MAX_AHEAD} ahead of the newest ({meta.last_seq})")
    received = _arrival(u, deps)
    segdur = float(meta.segment_duration or st.segment_duration)
    if input_loss_wait(meta, st) is not None:
        # Before the probe: from now on the packager knows the chunk is in (input loss never takes its slot).
        store.note_seen(u.channel, run, u.seq)

    # No read of the slot first: the conditional put below is the check (a new chunk, by far the common
    # case, costs one write), and what it finds stored decides a redelivery, a conflict or a late chunk.
    base_item: dict[str, Any] = {
        "etag": u.etag, "version_id": u.version_id, "bucket": u.bucket, "source_key": u.key, "ext": u.ext,
        "size": u.size, "received_at": iso(received),
        # The ladder the chunk was placed on (its frames and audio plan): the worker transcodes to it
        # without reading the channel record again.
        "ladder": deps.ladder_name(meta),
        # DynamoDB TTL attribute (the table's TTL is on "expires_at"): a chunk outlives the DVR window by a day.
        "expires_at": int(received.timestamp() + float(meta.dvr_window or st.dvr_window) + 86400),
    }
    ladder = deps.ladder(meta)
    run_item: dict[str, Any] = {}
    refused: str | None = None
    info: Any = None
    found: Any = None
    facts: dict[str, Any] = {}
    try:
        info, found = _probe(u, deps)
        facts, run_item = _place(u, deps, meta, run, info, received, segdur)
        _check_duration(facts, segdur, ladder.audio.sample_rate)
    except InvalidMediaError as e:
        refused = str(e)
    # An upload that created the run fixed its clock, whatever becomes of it now (too long, or the put
    # finds the slot taken): nobody else will ask for the run's slate, and without it no slot of the run
    # can ever be slated (the channel would stall). It asks after its own job is on its way: the transcode
    # pool takes the oldest event first, and the run's first segment must not wait for a render that only
    # a later missing chunk needs.
    try:
        return _record(u, deps, meta, run, base_item, refused, facts, info, found, run_item, received)
    finally:
        if run_item.get("created"):
            _request_slate(u, deps, run)


def _record(u: Upload, deps: Deps, meta: ChannelRecord, run: int, base_item: dict[str, Any], refused: str | None,
            facts: dict[str, Any], info: Any, found: Any, run_item: dict[str, Any], received: datetime) -> str:
    """The placed upload: recorded as invalid, judged against what holds its slot, or accepted and sent."""
    store = deps.store
    if refused is not None:
        return _invalid(u, deps, meta, run, base_item, refused)
    item = {**base_item, "status": RECEIVED, **facts, **_probe_record(info)}
    status, existing = store.record_chunk(u.channel, run, u.seq, item)
    if status != "new":
        return _not_new(u, deps, meta, run, status, existing)
    store.note_arrival(u.channel, run, u.seq, received)
    _source_cues(u, deps, meta, run, facts, run_item, found)  # before the jobs: they force IDRs at its splices
    _fan_out(u, deps, meta, run, u.version_id)
    logger.info("chunk accepted", extra={"run": run, "v_start": facts["v_start"], "frames": facts["frames"],
                                         "audio": facts["a_mode"]})
    metrics.add_metric(name="AcceptedChunks", unit=MetricUnit.Count, value=1)
    return "accepted"


def _not_new(u: Upload, deps: Deps, meta: ChannelRecord, run: int, status: str, existing: dict[str, Any]) -> str:
    """The slot was taken: by this very chunk (a redelivered event), another upload, or slate."""
    if status == "late":
        return _late_chunk(deps, u, run, "its slot was already published as slate")
    if status == "conflict":
        return _reject(deps, u, f"seq {u.seq} already received with another ETag")
    if existing.get("queued") or existing.get("status") == INVALID:
        logger.info("duplicate upload event ignored")
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        return "duplicate"
    _fan_out(u, deps, meta, run, str(existing.get("version_id", "")))  # recorded, but the jobs may not have left
    return "requeued"


def _place(u: Upload, deps: Deps, meta: ChannelRecord, run: int, info: Any, received: datetime,
           segdur: float, offset: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where the chunk goes on the run's clocks: the run's base (fixed by its first valid chunk), then
    the chunk's grid frames and the audio frames the transcode will produce for it. `offset`: ticks into
    segment `u.seq` where the upload starts (a low-latency part), so a run's first part fixes the base its
    segment would have."""
    ladder = deps.ladder(meta)
    rate = ladder.audio.sample_rate
    cache = deps.extra.setdefault("runs", {})
    run_item = cache.get((u.channel, run))
    if run_item is None:
        run_item = deps.store.run_clock(u.channel, run)  # immutable facts: a warm process reads them once
    created = False
    if run_item is None:
        base = base_ticks(info.start_ticks, u.seq, segdur) - offset
        start = media_ticks(info.start_ticks, base, u.seq, segdur)
        avail = received - timedelta(seconds=(start + info.end_ticks - info.start_ticks) / grid.TICKS)
        phase = 0
        if audio_plan.can_copy(info.audio, ladder, info.container):
            phase = grid.samples(start + info.audio.start_ticks - info.start_ticks, rate) % grid.AAC_FRAME
        run_item, created = deps.store.fix_run(u.channel, run, {
            "base": base, "availability_start": iso(avail), "audio_phase": phase, "started_at": iso(received)})
    cache[(u.channel, run)] = {k: v for k, v in run_item.items() if k != "created"}
    base = int(run_item["base"])
    start = media_ticks(info.start_ticks, base, u.seq, segdur)
    span = grid.video_span(start, start + info.end_ticks - info.start_ticks, ladder.frame_rate)
    plan = audio_plan.plan(ladder, info, start, span)
    facts: dict[str, Any] = {
        "src_start": info.start_ticks, "src_end": info.end_ticks, "start_ticks": start,
        "first_frame": span.first_frame, "frames": span.frames,
        "v_start": span.start(ladder.frame_rate), "v_dur": span.duration(ladder.frame_rate),
        "a_start": plan.span.start, "a_dur": plan.span.duration, "a_mode": plan.mode,
        "duration": span.duration(ladder.frame_rate) / grid.TICKS, "media_start": start / grid.TICKS,
    }
    if info.audio is not None:
        facts.update({"a_src_start": info.audio.start_ticks, "a_src_end": info.audio.end_ticks,
                      "a_codec": info.audio.codec, "a_rate": info.audio.sample_rate,
                      "a_channels": info.audio.channels})
    return facts, {**run_item, "created": created}


def _check_duration(facts: dict[str, Any], segment_duration: float, rate: int) -> None:
    """EXT-X-TARGETDURATION is fixed for the event (RFC 8216 6.2.1) and every EXTINF must round to at
    most it, so a chunk whose video or audio rounds above the channel's segment duration cannot be
    listed: it is refused (its slot gets slate) with the encoder setting to fix, instead of breaking
    players."""
    limit = round_half_up(segment_duration) + 0.5
    longest = max(facts["v_dur"] / grid.TICKS, facts["a_dur"] / rate)
    if longest >= limit:
        raise InvalidMediaError(
            f"chunk is {longest:.2f} s, longer than the channel's {segment_duration:g} s segments allow "
            f"(< {limit:g} s): cut the source every {segment_duration:g} s with a keyframe at each cut"
        )


def _arrival(u: Upload, deps: Deps) -> datetime:
    """When the upload completed: S3's eventTime (latency is measured from there), unless it is
    implausibly far from our clock (a replayed or synthetic event, clock skew), which would turn
    the chunk's slate deadline into nonsense."""
    now = deps.now()
    if u.event_time is not None and abs((now - u.event_time).total_seconds()) <= MAX_EVENT_SKEW:
        return u.event_time
    return now


def _probe_record(info: Any) -> dict[str, str]:
    """The probe, for the transcode job (it reads the same object version: no second probe)."""
    from ..transcode.probe import MediaInfo, to_record

    return {"probe": to_record(info)} if isinstance(info, MediaInfo) else {}


def _probe(u: Upload, deps: Deps) -> tuple[Any, Any]:
    """(the probe's MediaInfo, the chunk's in-band SCTE-35 sections or None), from one download."""
    fd, path = tempfile.mkstemp(prefix="chunk-", suffix=f".{u.ext}")
    os.close(fd)
    try:
        try:
            deps.objects.download(u.bucket, u.key, Path(path), version_id=u.version_id, etag=u.etag)
        except NotFoundError as e:
            raise InvalidMediaError(f"chunk vanished or was replaced before it could be read: {e}") from e
        info = deps.probe(path)
        try:
            found = deps.scan_cues(path, u.ext)
        except Exception:  # a cue reader failure must never cost the chunk
            logger.exception("SCTE-35 scan failed; the chunk is published without its cues")
            found = None
        return info, found
    finally:
        Path(path).unlink(missing_ok=True)


def _source_cues(u: Upload, deps: Deps, meta: ChannelRecord, run: int, facts: dict[str, Any],
                 run_item: dict[str, Any], found: Any) -> None:
    """The chunk's SCTE-35 cues -> ad breaks (issue #11); the chunk plays whatever its cues say."""
    from . import cues

    try:
        cues.record(u, deps, meta, run, facts, run_item, found)
    except Exception:
        logger.exception("recording the chunk's SCTE-35 cues failed; the chunk is published without them")


def _fan_out(u: Upload, deps: Deps, meta: ChannelRecord, run: int, version_id: str) -> None:
    """One job per chunk (one decode feeds every rendition: least CPU), or one per chunk x
    rendition when the channel asks for it (lowest latency for big ladders: parallel Lambdas)."""
    ladder = deps.ladder(meta)
    groups: list[tuple[str, ...]] = [(r,) for r in ladder.names] if meta.fanout == "rendition" else [()]
    for g in groups:
        msg = TranscodeMessage(u.channel, u.seq, u.etag, g, run, "chunk", version_id, _correlation(u))
        deps.queue.send(deps.settings.transcode_queue_url, msg.body())
    deps.store.update_chunk(u.channel, run, u.seq, u.etag, {"queued": True})


def _request_slate(u: Upload, deps: Deps, run: int) -> None:
    """The run's first valid chunk: render its slate now, so a missing chunk later never has to wait."""
    msg = TranscodeMessage(u.channel, 0, "", (), run, "slate", "", _correlation(u))
    deps.queue.send(deps.settings.transcode_queue_url, msg.body())


def _invalid(u: Upload, deps: Deps, meta: ChannelRecord, run: int, item: dict[str, Any], error: str) -> str:
    """A corrupt chunk: recorded as invalid (the packager slates its slot), counted, and the
    packager is woken so the slate appears now rather than at the deadline."""
    status, existing = deps.store.record_chunk(u.channel, run, u.seq, {**item, "status": INVALID, "error": error[:500]})
    if status != "new":  # the slot is taken: decided (and counted) as for a valid chunk
        return _not_new(u, deps, meta, run, status, existing)
    logger.warning("chunk rejected as invalid media", extra={"error": error})
    metrics.add_metric(name="InvalidChunks", unit=MetricUnit.Count, value=1)
    deps.store.count_error(u.channel, f"chunk {u.seq}: {error}")
    deps.store.note_arrival(u.channel, run, u.seq, _arrival(u, deps))
    if deps.settings.package_queue_url:
        deps.queue.send(deps.settings.package_queue_url,
                        PackageMessage(u.channel, u.seq, correlation_id=_correlation(u)).body())
    return "invalid"


def _late_chunk(deps: Deps, u: Upload, run: int, why: str) -> str:
    """Dropped: its slot is slate already. Flagged on the slot's SEG# item (what an audit of the run reads:
    slate because the chunk came late, not because none came) and counted once per chunk, however often
    the encoder retries it or its event is redelivered."""
    logger.warning("late chunk dropped", extra={"run": run, "why": why})
    if deps.store.mark_late(u.channel, run, u.seq):
        metrics.add_metric(name="LateChunks", unit=MetricUnit.Count, value=1)
        deps.store.count(u.channel, "late_chunks", f"chunk {u.seq} of run {run}: {why}")
    return f"late: {why}"


def _late(deps: Deps, u: Upload, run: int, why: str) -> str:
    logger.warning("late chunk dropped", extra={"run": run, "why": why})
    metrics.add_metric(name="LateChunks", unit=MetricUnit.Count, value=1)
    deps.store.count(u.channel, "late_chunks", f"chunk {u.seq} of run {run}: {why}")
    return f"late: {why}"


def _reject(deps: Deps, u: Upload, reason: str, count_on_channel: bool = True) -> str:
    logger.warning("chunk rejected", extra={"key": u.key, "reason": reason})
    metrics.add_metric(name="RejectedChunks", unit=MetricUnit.Count, value=1)
    if count_on_channel:
        deps.store.count_error(u.channel, f"chunk {u.seq} rejected: {reason}")
    return f"rejected: {reason}"
