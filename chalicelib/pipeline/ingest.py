"""Use case `on_segment_uploaded`: a chunk landed in the ingest bucket.

validate key + channel -> probe -> place on the output clock -> record (conditional) -> fan out
transcode jobs. At-least-once delivery is handled twice over:
1. Powertools Idempotency keyed on (channel, seq, etag) short-circuits redeliveries of an event
   that already completed (its stored result is returned, nothing runs);
2. the SEG# item's conditional put is the ground truth even after idempotency records expire:
   same ETag = duplicate, other ETag = conflict (logged, counted, not processed).
A chunk is recorded before its jobs are sent and flagged `queued` after, so a crash in between
re-sends the jobs on redelivery instead of dropping them (workers are idempotent).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConflictError, InvalidMediaError, NotFoundError
from ..media.timeline import round_half_up
from ..records import INGEST_STATES, ChannelRecord, iso
from .assemble import INVALID, RECEIVED
from .clock import base_for, media_start
from .deps import Deps
from .events import Rejection, Upload
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage, TranscodeMessage

# An upload this far beyond the newest seq is hostile or a misconfigured encoder: accepting it
# would make every chunk in between a GAP.
MAX_AHEAD = 900
MAX_EVENT_SKEW = 300.0  # seconds


def handle(items: list[Upload | Rejection], deps: Deps) -> list[str]:
    """Process a batch of parsed events; one bad item never fails the others."""
    out = []
    for item in items:
        if isinstance(item, Rejection):
            out.append(reject_key(item))
        else:
            out.append(idempotent_upload(item, deps))
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

    run = meta.started_at if meta is not None else ""
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
                                    static_pk_value="IDEM#ingest")


def on_upload(u: Upload, deps: Deps, meta: ChannelRecord | None) -> str:
    """`meta`: the channel's record as read for this upload (None: unknown channel)."""
    with bind(channel=u.channel, seq=u.seq):
        return _on_upload(u, deps, meta)


def _on_upload(u: Upload, deps: Deps, meta: ChannelRecord | None) -> str:
    store, st = deps.store, deps.settings
    if meta is None:
        return _reject(deps, u, "unknown channel", count_on_channel=False)
    if meta.state not in INGEST_STATES:
        return _reject(deps, u, f"channel is {meta.state}, not accepting chunks")
    if meta.last_seq >= 0 and u.seq > meta.last_seq + MAX_AHEAD:
        return _reject(deps, u, f"seq {u.seq} is more than {MAX_AHEAD} ahead of the newest ({meta.last_seq})")
    run = meta.started_at or ""
    received = _arrival(u, deps)
    segdur = float(meta.segment_duration or st.segment_duration)

    existing = store.chunk(u.channel, u.seq)
    if existing and existing.get("run", "") == run:
        if existing.get("etag") != u.etag:
            return _reject(deps, u, f"seq {u.seq} already received with another ETag")
        if existing.get("queued") or existing.get("status") == INVALID:
            logger.info("duplicate upload event ignored")
            metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
            return "duplicate"
        _fan_out(u, deps, meta)  # recorded, but the jobs may not have left
        return "requeued"

    base_item: dict[str, Any] = {
        "etag": u.etag, "bucket": u.bucket, "source_key": u.key, "ext": u.ext, "size": u.size,
        "received_at": iso(received), "run": run,
        # DynamoDB TTL attribute (enable TTL on "expires_at"): a chunk outlives the DVR window by a day.
        "expires_at": int(received.timestamp() + float(meta.dvr_window or st.dvr_window) + 86400),
    }
    try:
        info = _probe(u, deps)
        _check_duration(float(info.duration), segdur)
    except InvalidMediaError as e:
        return _invalid(u, deps, base_item, str(e))

    base, _avail = store.fix_base(
        u.channel, run, base_for(info.start_time, u.seq, segdur),
        received - timedelta(seconds=u.seq * segdur + float(info.duration)),
    )
    start = media_start(float(info.start_time), base, u.seq, segdur)
    item = {**base_item, "status": RECEIVED, "duration": float(info.duration),
            "source_start": float(info.start_time), "media_start": start}
    try:
        status = store.put_chunk(u.channel, u.seq, item)
    except ConflictError as e:
        return _reject(deps, u, str(e))
    if status == "duplicate":
        return "duplicate"
    store.note_arrival(u.channel, u.seq, received)
    _fan_out(u, deps, meta)
    logger.info("chunk accepted", extra={"media_start": start, "duration": float(info.duration)})
    metrics.add_metric(name="AcceptedChunks", unit=MetricUnit.Count, value=1)
    return "accepted"


def _check_duration(duration: float, segment_duration: float) -> None:
    """EXT-X-TARGETDURATION is fixed for the event (RFC 8216 6.2.1) and every EXTINF must round to at
    most it, so a chunk that rounds above the channel's segment duration cannot be listed: it is
    refused (and published as a GAP) with the encoder setting to fix, instead of breaking players."""
    # The same rounding the renderer applies (media.timeline.round_half_up): at `limit` EXTINF rounds up.
    limit = round_half_up(segment_duration) + 0.5
    if duration >= limit:
        raise InvalidMediaError(
            f"chunk is {duration:.2f} s, longer than the channel's {segment_duration:g} s segments allow "
            f"(< {limit:g} s): cut the source every {segment_duration:g} s with a keyframe at each cut"
        )


def _arrival(u: Upload, deps: Deps) -> datetime:
    """When the upload completed: S3's eventTime (latency is measured from there), unless it is
    implausibly far from our clock (a replayed or synthetic event, clock skew), which would turn
    the chunk's gap deadline into nonsense."""
    now = deps.now()
    if u.event_time is not None and abs((now - u.event_time).total_seconds()) <= MAX_EVENT_SKEW:
        return u.event_time
    return now


def _probe(u: Upload, deps: Deps) -> Any:
    fd, path = tempfile.mkstemp(prefix="chunk-", suffix=f".{u.ext}")
    os.close(fd)
    try:
        try:
            deps.objects.download(u.bucket, u.key, Path(path))
        except NotFoundError as e:
            raise InvalidMediaError(f"chunk vanished before it could be read: {e}") from e
        return deps.probe(path)
    finally:
        Path(path).unlink(missing_ok=True)


def _fan_out(u: Upload, deps: Deps, meta: ChannelRecord) -> None:
    """One job per chunk (one decode feeds every rendition: least CPU), or one per chunk x
    rendition when the channel asks for it (lowest latency for big ladders: parallel Lambdas)."""
    ladder = deps.ladder(meta)
    groups: list[tuple[str, ...]] = [(r,) for r in ladder.names] if meta.fanout == "rendition" else [()]
    for g in groups:
        deps.queue.send(deps.settings.transcode_queue_url, TranscodeMessage(u.channel, u.seq, u.etag, g).body())
    deps.store.update_chunk(u.channel, u.seq, u.etag, {"queued": True})


def _invalid(u: Upload, deps: Deps, item: dict[str, Any], error: str) -> str:
    """A corrupt chunk: recorded as invalid (the packager lists it as a GAP), counted, and the
    packager is woken so the GAP appears now rather than at the deadline."""
    logger.warning("chunk rejected as invalid media", extra={"error": error})
    metrics.add_metric(name="InvalidChunks", unit=MetricUnit.Count, value=1)
    try:
        status = deps.store.put_chunk(u.channel, u.seq, {**item, "status": INVALID, "error": error[:500]})
    except ConflictError as e:
        return _reject(deps, u, str(e))
    if status == "new":
        deps.store.count_error(u.channel, f"chunk {u.seq}: {error}")
        deps.store.note_arrival(u.channel, u.seq, _arrival(u, deps))
        if deps.settings.package_queue_url:
            deps.queue.send(deps.settings.package_queue_url, PackageMessage(u.channel, u.seq).body())
    return "invalid"


def _reject(deps: Deps, u: Upload, reason: str, count_on_channel: bool = True) -> str:
    logger.warning("chunk rejected", extra={"key": u.key, "reason": reason})
    metrics.add_metric(name="RejectedChunks", unit=MetricUnit.Count, value=1)
    if count_on_channel:
        deps.store.count_error(u.channel, f"chunk {u.seq} rejected: {reason}")
    return f"rejected: {reason}"
