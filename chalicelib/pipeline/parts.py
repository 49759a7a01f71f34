"""Low-latency parts through the pipeline (issue #12): ingest, transcode, slate parts, full segments.

    encoder --PUT {channel}/{seq:08d}.{part}.ts--> on_segment_uploaded -> `on_part_uploaded`
        probe, place on the run's grids, PRT# item (conditional), one transcode job (kind "part")
    transcode worker -> `transcode_part`: one ffmpeg for every rendition (the chunk job, on 0.5 s),
        {rendition}/{run}/{seq:08d}.{part}.m4s write-once, PRT#.done  <- the LL origin lists it from here
    packager -> `before_plan` (a hook before assemble.plan, under the packager's lease):
        slate parts for missing / late / corrupt part slots (media.parts.plan_parts), and for every
        segment whose parts are all there the full segment {seq:08d}.m4s (styp + the parts' fragments,
        tfdt as transcoded) plus its SEG# item: from there the regular pipeline publishes it in
        live.m3u8, dvr.m3u8 and the MPD exactly as a chunk it transcoded itself.

Items: PRT#{run:06d}#{seq:012d}#{part:02d} in the channel's partition, next to SEG#. A part slot is
claimed once (fill = media by the worker about to upload, fill = slate by the packager), like a chunk's.
Parts are never waited for by other parts: each is transcoded the moment it arrives, and a hole is
slated (after a later part has been ready for PART_WAIT_PARTS part durations) rather than stalling.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConflictError, InvalidMediaError, NotFoundError, StoreError, TranscodeError
from ..media import grid, hls
from ..media.ladder import Ladder
from ..media.parts import INVALID, MEDIA, RECEIVED, SLATE, PartClaim, PartSpec, PartState, plan_parts, spec_for
from ..records import INGEST_STATES, ChannelRecord, check_run, check_seq, iso, parse_iso, run_name
from . import assemble
from .assemble import ChannelShape, ChunkState, PublishState, RunInfo
from .deps import Deps
from .events import Upload
from .objects import IMMUTABLE, content_type
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage, TranscodeMessage
from .store import PipelineStore, _failed_condition, _to_dynamo, chunk_state

PART_WAIT_PARTS = 2  # a missing part is slated once a later part has been ready this many part durations
MAX_PART_CLAIMS = 8  # slate parts per packager run (an outage catches up over a few runs)
LL_TIMER = "parts_recheck_at"  # PUB attribute deduplicating the packager's part timers
_FRAGMENTS_PER_CHUNK = 64  # as transcode.job: mfhd sequence = seq * 64 + n


def part_sk(run: int, seq: int, index: int) -> str:
    if not 0 <= index <= 9:
        raise ValueError(f"part index {index} outside 0-9")
    return f"PRT#{check_run(run):06d}#{check_seq(seq):012d}#{index:02d}"


def channel_spec(meta: ChannelRecord, ladder: Ladder, default_segment: float) -> PartSpec | None:
    return spec_for(meta.part_duration, float(meta.segment_duration or default_segment), ladder.frame_rate,
                    ladder.audio.sample_rate)


# --------------------------------------------------------------------------- store


class PartStore(PipelineStore):
    """The PRT# items (the same table and conventions as SEG#: every racing write is conditional)."""

    def put_part(self, channel_id: str, run: int, seq: int, index: int, item: dict[str, Any]) -> str:
        full = {**self._key(channel_id, part_sk(run, seq, index)), "run": run, "seq": seq, "part": index,
                **_to_dynamo(item)}
        try:
            self._t.put_item(Item=full, ConditionExpression="attribute_not_exists(#sk)",
                             ExpressionAttributeNames={"#sk": "sk"})
            return "new"
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"part put failed: {e}") from e
        existing = self.part(channel_id, run, seq, index) or {}
        if existing.get("fill") == SLATE and not existing.get("etag"):
            raise ConflictError(f"part {seq}.{index} came after its slot was published as slate (late)")
        if existing.get("etag") == item.get("etag"):
            return "duplicate"
        raise ConflictError(f"part {channel_id}/{seq}.{index} was already received with ETag "
                            f"{existing.get('etag')!r}; ignoring the upload with ETag {item.get('etag')!r}")

    def part(self, channel_id: str, run: int, seq: int, index: int) -> dict[str, Any] | None:
        return self._get(channel_id, part_sk(run, seq, index))

    def parts(self, channel_id: str, run: int, lo: tuple[int, int] = (0, 0),
              hi: tuple[int, int] | None = None) -> dict[tuple[int, int], dict[str, Any]]:
        """PRT# items of a run from part `lo` to part `hi` (inclusive; None: the newest)."""
        upper = part_sk(run, *hi) if hi is not None else f"PRT#{run:06d}#~"
        items = self._query(channel_id, part_sk(run, *lo), upper)
        return {(int(it["seq"]), int(it["part"])): it for it in items}

    def update_part(self, channel_id: str, run: int, seq: int, index: int, etag: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(_to_dynamo(fields).values())}
        self._update(self._key(channel_id, part_sk(run, seq, index)), f"SET {sets}", {**values, ":etag": etag},
                     "#etag = :etag", names=names)

    def claim_part_media(self, channel_id: str, run: int, seq: int, index: int, etag: str, now: datetime) -> bool:
        try:
            self._update_raw(
                Key=self._key(channel_id, part_sk(run, seq, index)),
                UpdateExpression="SET #fill = :media, #claimed_at = if_not_exists(#claimed_at, :now)",
                ConditionExpression="#etag = :etag AND (attribute_not_exists(#fill) OR #fill = :media)",
                ExpressionAttributeValues={":media": MEDIA, ":now": iso(now), ":etag": etag})
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"part media claim failed: {e}") from e

    def claim_part_slate(self, channel_id: str, run: int, claim: PartClaim, now: datetime,
                         stale_before: datetime) -> bool:
        facts = {":slate": SLATE, ":now": iso(now), ":vs": claim.v_start, ":vd": claim.v_dur, ":as": claim.a_start,
                 ":ad": claim.a_dur, ":why": claim.reason, ":run": run, ":seq": claim.seq, ":part": claim.index,
                 ":media": MEDIA, ":stale": iso(stale_before)}
        try:
            self._update_raw(
                Key=self._key(channel_id, part_sk(run, claim.seq, claim.index)),
                UpdateExpression="SET #fill = :slate, #claimed_at = :now, #slate_v_start = :vs, #slate_v_dur = :vd, "
                                 "#slate_a_start = :as, #slate_a_dur = :ad, #slate_reason = :why, #run = :run, "
                                 "#seq = :seq, #part = :part, #received_at = if_not_exists(#received_at, :now)",
                ConditionExpression="attribute_not_exists(#fill) OR #fill = :slate OR "
                                    "(#fill = :media AND #claimed_at < :stale)",
                ExpressionAttributeValues=facts)
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"part slate claim failed: {e}") from e

    def record_part_slate(self, channel_id: str, run: int, seq: int, index: int) -> None:
        self._update(self._key(channel_id, part_sk(run, seq, index)), "SET #slate_written = :t",
                     {":t": True, ":slate": SLATE}, "#fill = :slate")

    def mark_part_done(self, channel_id: str, run: int, seq: int, index: int, etag: str, renditions: list[str],
                       facts: Mapping[str, Any], now: datetime) -> None:
        values: dict[str, Any] = {":r": set(renditions), ":etag": etag, ":now": iso(now)}
        sets = ["#done_at = :now"]
        for i, (k, v) in enumerate(_to_dynamo(dict(facts)).items()):
            values[f":x{i}"] = v
            sets.append(f"#{k} = :x{i}")
        self._update(self._key(channel_id, part_sk(run, seq, index)), "ADD #done :r SET " + ", ".join(sets), values,
                     "#etag = :etag")

    def mark_part_late(self, channel_id: str, run: int, seq: int, index: int) -> bool:
        try:
            self._update_raw(Key=self._key(channel_id, part_sk(run, seq, index)), UpdateExpression="SET #late = :t",
                             ConditionExpression="attribute_exists(#sk) AND attribute_not_exists(#late)",
                             ExpressionAttributeValues={":t": True})
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"late part mark failed: {e}") from e


def part_store(deps: Deps) -> PartStore:
    if isinstance(deps.store, PartStore):
        return deps.store
    cached = deps.extra.get("part_store")
    if cached is None:
        cached = deps.extra["part_store"] = PartStore(deps.store._t)
    return cached


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def part_state(it: Mapping[str, Any]) -> PartState:
    fill = str(it.get("fill") or "")
    prefix = "slate_" if fill == SLATE else ""
    return PartState(
        seq=int(it["seq"]), index=int(it["part"]), received_at=parse_iso(str(it["received_at"])),
        status=INVALID if it.get("status") == INVALID else RECEIVED,
        v_start=_int(it.get(f"{prefix}v_start")), v_dur=_int(it.get(f"{prefix}v_dur")),
        a_start=_int(it.get(f"{prefix}a_start")), a_dur=_int(it.get(f"{prefix}a_dur")),
        done=frozenset(it.get("done") or ()), done_at=parse_iso(str(it["done_at"])) if it.get("done_at") else None,
        fill=fill, claimed_at=parse_iso(str(it["claimed_at"])) if it.get("claimed_at") else None,
        slate_written=bool(it.get("slate_written")), late=bool(it.get("late")),
        codecs={k[6:]: str(v) for k, v in it.items() if k.startswith("codec_")},
        etag=str(it.get("etag") or ""),
    )


# --------------------------------------------------------------------------- ingest + transcode
# A part is transcoded in the very invocation that ingests it: one download, one (structural) probe, no
# queue hop and no second Lambda per part; a corrupt part still fails in ffmpeg's decode and is slated.
# When one invocation receives several parts at once (an SQS batch), the first is transcoded here and
# the others go to the transcode queue, so no part waits for another's encode.


def on_part_uploaded(u: Upload, deps: Deps, inline: bool = True) -> str:
    from .ingest import _correlation

    with bind(channel=u.channel, seq=u.seq, part=u.part, correlation_id=_correlation(u)):
        return _on_part(u, deps, inline)


def _on_part(u: Upload, deps: Deps, inline: bool) -> str:
    from .ingest import MAX_AHEAD, _arrival, _late, _place, _reject, _request_slate, _source_cues

    t0 = time.perf_counter()
    store = deps.store
    meta = _channel(deps, u.channel)
    if meta is None:
        return _reject(deps, u, "unknown channel", count_on_channel=False)
    ladder = deps.ladder(meta)
    spec = channel_spec(meta, ladder, deps.settings.segment_duration)
    if spec is None:
        return _reject(deps, u, "the channel is not low-latency (no part_duration): upload whole chunks "
                                f"{u.seq:08d}.{u.ext}")
    if meta.state not in INGEST_STATES:
        return _reject(deps, u, f"channel is {meta.state}, not accepting parts")
    if u.part >= spec.count:
        return _reject(deps, u, f"part {u.part}: this channel's segments have {spec.count} parts (0-{spec.count - 1})")
    run = meta.current_run
    if meta.last_seq >= 0 and meta.last_run == run and u.seq > meta.last_seq + MAX_AHEAD:
        return _reject(deps, u, f"seq {u.seq} is more than {MAX_AHEAD} ahead of the newest ({meta.last_seq})")
    ps = part_store(deps)
    received = _arrival(u, deps)
    base_item: dict[str, Any] = {
        "etag": u.etag, "version_id": u.version_id, "bucket": u.bucket, "source_key": u.key, "ext": u.ext,
        "size": u.size, "received_at": iso(received),
        "expires_at": int(received.timestamp() + float(meta.dvr_window or deps.settings.dvr_window) + 86400),
    }
    timing: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="part-") as tmp:
        src = Path(tmp) / f"source.{u.ext}"
        try:
            try:
                deps.objects.download(u.bucket, u.key, src, version_id=u.version_id, etag=u.etag)
            except NotFoundError as e:
                raise InvalidMediaError(f"part vanished or was replaced before it could be read: {e}") from e
            info = _probe(deps, src)
            found = _scan_cues(deps, src, u.ext)
            timing["probe_ms"] = _ms(t0)
            facts, run_item = _place(u, deps, meta, run, info, received, spec.segment_duration,
                                     offset=round(u.part * spec.part_duration * grid.TICKS))
            if not spec.fits(int(facts["v_dur"]), int(facts["a_dur"])):
                raise InvalidMediaError(
                    f"part is {facts['v_dur'] / grid.TICKS:.3f} s (audio "
                    f"{facts['a_dur'] / ladder.audio.sample_rate:.3f} s), longer than PART-TARGET "
                    f"{spec.part_target:g} s: cut parts every {spec.part_duration:g} s with a keyframe at each cut")
        except InvalidMediaError as e:
            return _invalid(u, deps, run, base_item, str(e))
        item = {**base_item, "status": RECEIVED, **facts}
        try:
            status = ps.put_part(u.channel, run, u.seq, u.part, item)
        except ConflictError as e:
            if "late" in str(e):
                return _late(deps, u, run, str(e))
            return _reject(deps, u, str(e))
        if status == "duplicate":
            existing = ps.part(u.channel, run, u.seq, u.part) or {}
            if existing.get("queued") or existing.get("done") or existing.get("status") == INVALID:
                metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
                return "duplicate"
            item = existing  # recorded, but its transcode never ran (or crashed): run it now
        # The part's in-band SCTE-35 cues become breaks as a chunk's do (issue #11), before its transcode;
        # a resent or redelivered cue is the same break. (A part's transcode forces no IDR at a splice
        # inside it: only its first frame, at the part boundary, is one.)
        _source_cues(u, deps, meta, run, facts, run_item, found)
        if u.part == 0:
            store.note_arrival(u.channel, run, u.seq, received)  # the watchdog's input: once per segment
        if run_item.get("created"):
            _request_slate(u, deps, run)
        metrics.add_metric(name="AcceptedParts", unit=MetricUnit.Count, value=1)
        if not inline:
            _fan_out(u, deps, run, u.version_id)
            return "accepted"
        timing["ingest_ms"] = _ms(t0)
        try:
            result = _transcode(deps, meta, ladder, spec, u.channel, run, u.seq, u.part, u.etag, item, src, Path(tmp),
                                timing, info)
        except InvalidMediaError as e:
            return _invalid(u, deps, run, base_item, str(e), recorded=True)
    logger.info("part accepted", extra={"result": result, **timing, "total_ms": _ms(t0)})
    return "accepted" if result == "done" else result


# A channel's warm ingest Lambdas take its parts in turn: the channel record one read for an earlier part
# serves for META_TTL seconds (a stop is seen at most that late, and a stopping run is sealed only after
# SEAL_GRACE anyway; a restart takes longer than this to reach RUNNING).
_META: dict[str, tuple[float, ChannelRecord]] = {}
META_TTL = 2.0


def _channel(deps: Deps, channel: str) -> ChannelRecord | None:
    hit = _META.get(channel)
    now = time.monotonic()
    if hit is not None and now - hit[0] < META_TTL and "lambda_context" in deps.extra:
        return hit[1]
    meta = deps.store.channel(channel)
    if meta is not None:
        _META[channel] = (now, meta)
    return meta


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _probe(deps: Deps, path: Path) -> Any:
    """The structural probe (container, streams, timestamps): ffmpeg's decode in the transcode right after
    is the decode check, so the part is not decoded twice."""
    from .deps import _probe as default_probe

    if deps.probe is default_probe:
        from ..transcode.probe import probe

        return probe(str(path), decode=False)
    return deps.probe(str(path))


def _scan_cues(deps: Deps, path: Path, ext: str) -> Any:
    """The part's in-band SCTE-35 sections (media.scte35.TsScan, None for MP4), read while it is on disk."""
    try:
        return deps.scan_cues(str(path), ext)
    except Exception:  # a cue reader failure must never cost the part
        logger.exception("SCTE-35 scan failed; the part is published without its cues")
        return None


def _invalid(u: Upload, deps: Deps, run: int, item: dict[str, Any], error: str, recorded: bool = False) -> str:
    """A corrupt part: recorded invalid (its slot is slated at once), counted, the packager woken."""
    from .ingest import _reject

    logger.warning("part rejected as invalid media", extra={"error": error})
    metrics.add_metric(name="InvalidChunks", unit=MetricUnit.Count, value=1)
    ps = part_store(deps)
    if recorded:
        ps.update_part(u.channel, run, u.seq, u.part, u.etag, {"status": INVALID, "error": error[:500]})
        status = "new"
    else:
        try:
            status = ps.put_part(u.channel, run, u.seq, u.part, {**item, "status": INVALID, "error": error[:500]})
        except ConflictError as c:
            return _reject(deps, u, str(c))
    if status == "new":
        deps.store.count_error(u.channel, f"part {u.seq}.{u.part}: {error}")
        _wake(deps, u.channel, u.seq)
    return "invalid"


def _fan_out(u: Upload, deps: Deps, run: int, version_id: str) -> None:
    from .ingest import _correlation

    msg = TranscodeMessage(u.channel, u.seq, u.etag, (), run, "part", version_id, _correlation(u), u.part)
    deps.queue.send(deps.settings.transcode_queue_url, msg.body())
    part_store(deps).update_part(u.channel, run, u.seq, u.part, u.etag, {"queued": True})


def _neighbours(spec: PartSpec, seq: int, index: int) -> tuple[tuple[int, int], tuple[int, int]]:
    prev = (seq, index - 1) if index > 0 else (seq - 1, spec.count - 1)
    nxt = (seq, index + 1) if index + 1 < spec.count else (seq + 1, 0)
    return prev, nxt


def transcode_part(msg: TranscodeMessage, deps: Deps) -> str:
    """A queued part (the second and later parts of an ingest batch, or a redelivery): fetch it by the
    version ingest accepted and transcode it."""
    ps = part_store(deps)
    meta = deps.store.channel(msg.channel)
    if meta is None:
        return "unknown"
    ladder = deps.ladder(meta)
    spec = channel_spec(meta, ladder, deps.settings.segment_duration)
    if spec is None or not 0 <= msg.part < spec.count:
        return "not a low-latency part"
    item = ps.part(msg.channel, msg.run, msg.seq, msg.part)
    if item is None or item.get("etag") != msg.etag:
        return "superseded"
    with tempfile.TemporaryDirectory(prefix="part-") as tmp:
        src = Path(tmp) / f"source.{item.get('ext', 'ts')}"
        try:
            deps.objects.download(str(item.get("bucket") or deps.settings.ingest_bucket), str(item["source_key"]), src,
                                  version_id=str(item.get("version_id") or msg.version_id or ""),
                                  etag=str(item.get("etag") or ""))
        except NotFoundError as e:
            raise TranscodeError(f"the accepted part is gone from the ingest bucket: {e}") from e
        try:
            return _transcode(deps, meta, ladder, spec, msg.channel, msg.run, msg.seq, msg.part, msg.etag, item, src,
                              Path(tmp), {})
        except InvalidMediaError as e:
            ps.update_part(msg.channel, msg.run, msg.seq, msg.part, msg.etag,
                           {"status": INVALID, "error": str(e)[:500]})
            _wake(deps, msg.channel, msg.seq)
            return "invalid"


def _transcode(deps: Deps, meta: ChannelRecord, ladder: Ladder, spec: PartSpec, channel: str, run: int, seq: int,
               index: int, etag: str, item: Mapping[str, Any], src: Path, tmp: Path, timing: dict[str, float],
               info: Any = None) -> str:
    """One part, every rendition, one ffmpeg (the chunk transcode job on a 0.5 s source), uploaded as
    `{rendition}/{run}/{seq:08d}.{part}.m4s`: each holds the part's grid frames (an IDR first) and the
    encoder's AAC frames that start in it, with their final tfdt."""
    from ..transcode.job import TranscodeJob
    from .worker import _audio_end, _audio_start, _facts, _preroll, _upload, job_timeout

    t0 = time.perf_counter()
    ps = part_store(deps)
    prev_key, next_key = _neighbours(spec, seq, index)
    if info is not None and item.get("a_mode") == "copy":
        # Just recorded by this invocation, its audio the encoder's own frames: the neighbours cannot change
        # what it holds (their bounds only matter to re-encoded audio), so no read is needed.
        near: dict[tuple[int, int], dict[str, Any]] = {(seq, index): dict(item)}
    else:
        near = dict(ps.parts(channel, run, max((0, 0), prev_key), next_key))
    current = near.get((seq, index), item)
    if current.get("etag") != etag:
        return "superseded"
    if current.get("status") == INVALID:
        return "invalid"
    if current.get("fill") == SLATE:
        return _late_part(deps, channel, run, seq, index, "its slot was published as slate before the transcode")
    if set(ladder.names) <= set(current.get("done") or ()):
        _wake(deps, channel, seq)
        return "duplicate"
    prev, nxt = near.get(prev_key), near.get(next_key)
    # An unrecorded previous part (uploads racing) is read under the encoder's part name, never as a chunk.
    ext = item.get("ext") or "ts"
    prev_name = f"{prev_key[0]:08d}.{prev_key[1]}.{ext}" if prev_key[0] >= 0 else None
    job = TranscodeJob(channel_id=channel, seq=seq, source_path=str(src), output_dir=str(tmp / "out"), ladder=ladder,
                       media_start=float(item["start_ticks"]) / grid.TICKS, timeout=job_timeout(deps),
                       start_ticks=int(item["start_ticks"]), first_frame=int(item["first_frame"]),
                       frames=int(item["frames"]), audio_not_before=_audio_end(prev),
                       audio_not_after=_audio_start(nxt), info=info,
                       preroll_path=_preroll(deps, dict(item), prev, tmp, prev_name) if prev_name or prev else "")
    result = deps.transcode(job)
    timing["ffmpeg_ms"] = _ms(t0)
    if not ps.claim_part_media(channel, run, seq, index, etag, deps.now()):
        return _late_part(deps, channel, run, seq, index, "its slot was published as slate while it was transcoding")
    msg = TranscodeMessage(channel, seq, etag, (), run, "part", part=index)
    names = _upload(deps, msg, ladder, result, name=hls.part_name(seq, index))
    facts = _facts(result, ladder)
    ps.mark_part_done(channel, run, seq, index, etag, names,
                      {k: v for k, v in facts.items() if not k.startswith("ifr_")}, deps.now())
    timing["published_ms"] = _ms(t0)
    metrics.add_metric(name="PartTranscodeSeconds", unit=MetricUnit.Seconds, value=time.perf_counter() - t0)
    complete, needed = _after_part(ps, channel, run, spec, seq, index, frozenset(ladder.names))
    if complete:
        # The last part of a segment: write the full segment right here (the LL origin lists the next
        # segment's parts once it exists), then the packager publishes it for every other player.
        _write_segment(channel, deps, ladder, run, seq, complete, {}, deps.now())
        timing["segment_ms"] = _ms(t0)
    if needed:
        _wake(deps, channel, seq)
        timing["packaged_ms"] = _ms(t0)
    return "done"


def _after_part(ps: PartStore, channel: str, run: int, spec: PartSpec, seq: int, index: int,
                renditions: frozenset[str]) -> tuple[list[PartState], bool]:
    """(the segment's parts if this one completed it, whether the packager has work): it has when the
    segment is complete (to publish it) or when this part comes after a hole in its segment or the one
    before (to decide when to slate it). Otherwise it has nothing to do: the LL origin lists the part from
    its PRT# item, and the playlists on S3 change only when a segment is complete."""
    items = ps.parts(channel, run, (max(0, seq - 1), 0), (seq, spec.count - 1))
    states = {k: part_state(v) for k, v in items.items()}

    def filled(key: tuple[int, int]) -> bool:
        return key in states and states[key].filled(renditions)

    own = [(seq, i) for i in range(spec.count)]
    if all(filled(k) for k in own):
        return [states[k] for k in own], True
    before = [(seq, i) for i in range(index)]
    if seq > 0 and any((seq - 1, i) in items for i in range(spec.count)):
        before += [(seq - 1, i) for i in range(spec.count)]
    return [], not all(filled(k) for k in before)


def _late_part(deps: Deps, channel: str, run: int, seq: int, index: int, why: str) -> str:
    if part_store(deps).mark_part_late(channel, run, seq, index):
        metrics.add_metric(name="LateChunks", unit=MetricUnit.Count, value=1)
        deps.store.count(channel, "late_chunks", f"part {seq}.{index} of run {run}: {why}")
    logger.warning("late part dropped", extra={"why": why})
    return "late"


def _wake(deps: Deps, channel: str, seq: int) -> None:
    """Package right here (as the chunk worker does): the packager writes full segments and slate parts."""
    from . import publish

    try:
        publish.package(channel, deps)
        return
    except Exception:
        logger.exception("inline packaging failed; handing over to the package queue")
    if deps.settings.package_queue_url:
        deps.queue.send(deps.settings.package_queue_url, PackageMessage(channel, seq).body())


# --------------------------------------------------------------------------- packager hook


def before_plan(channel: str, deps: Deps, meta: ChannelRecord, ladder: Ladder, shape: ChannelShape,
                runs: Mapping[int, RunInfo], prev: PublishState, chunks: dict[int, dict[int, ChunkState]],
                now: datetime, pub: Mapping[str, Any], *, seal_deadline: datetime | None = None) -> None:
    """Before the packager plans: slate the part slots that are due (missing, late, corrupt) and write
    every segment whose parts are all there; the segments go into `chunks`, so this very plan lists them.
    Sealing (a stop, past its grace): holes before the last part are slated and the last segment is
    closed with the parts it has (a shorter final segment), so what LL players saw is what the VOD has."""
    spec = channel_spec(meta, ladder, deps.settings.segment_duration)
    rn = meta.current_run
    info = runs.get(rn)
    if spec is None or info is None or prev.ended:
        return
    st = prev.run(rn)
    if st is not None and st.sealed:
        return
    run_chunks = chunks.setdefault(rn, {})
    start_seq, prev_end = _resume_point(st, run_chunks)
    ps = part_store(deps)
    items = ps.parts(channel, rn, (start_seq, 0) if start_seq is not None else (0, 0))
    states = {k: part_state(v) for k, v in items.items()}
    renditions = frozenset(ladder.names)
    sealing = seal_deadline is not None and now >= seal_deadline
    wait = timedelta(seconds=PART_WAIT_PARTS * spec.part_duration)
    claimed = 0
    while True:
        plan = plan_parts(spec, states, renditions, now, start_seq=start_seq, prev_end=prev_end, wait=wait,
                          stale=assemble.STALE_CLAIM, slate_ready=info.slate_ready, sealing=sealing,
                          frame_ticks=ladder.frame_ticks, rate=ladder.audio.sample_rate)
        if not plan.claims or claimed >= MAX_PART_CLAIMS:
            break
        claim = plan.claims[0]
        state = _slate_part(channel, deps, ladder, rn, claim, now, states.get((claim.seq, claim.index)),
                            gap=shape.gap_mode)
        if state is None:  # a worker owns it after all: read it again and stop here
            fresh = ps.part(channel, rn, claim.seq, claim.index)
            if fresh is not None:
                states[(claim.seq, claim.index)] = part_state(fresh)
            break
        states[(claim.seq, claim.index)] = state
        claimed += 1
    by_seq: dict[int, list[PartState]] = {}
    for p in plan.listed:
        by_seq.setdefault(p.seq, []).append(p)
    for seq in plan.complete:
        if seq not in run_chunks:
            _write_segment(channel, deps, ladder, rn, seq, by_seq[seq], run_chunks, now)
    if plan.short is not None and plan.short not in run_chunks:
        logger.info("closing the final segment with the parts it has", extra={"seq": plan.short})
        _write_segment(channel, deps, ladder, rn, plan.short, by_seq[plan.short], run_chunks, now)
    if plan.recheck_at is not None:
        _timer(channel, deps, pub, plan.recheck_at, now)


def _resume_point(st: Any, run_chunks: Mapping[int, ChunkState]) -> tuple[int | None, tuple[int, int] | None]:
    """The first seq not yet written as a full segment, and where its media starts."""
    def facts(c: ChunkState) -> bool:
        return c.v_start is not None and c.v_dur is not None and c.a_start is not None and c.a_dur is not None

    have = sorted(s for s, c in run_chunks.items() if facts(c))
    if st is not None and st.last_seq >= st.first_seq and st.last_seq in run_chunks:
        last = st.last_seq
    elif have:
        last = have[0]
    else:
        return None, None
    while last + 1 in run_chunks and facts(run_chunks[last + 1]):
        last += 1
    c = run_chunks[last]
    assert c.v_start is not None and c.v_dur is not None and c.a_start is not None and c.a_dur is not None
    return last + 1, (c.v_start + c.v_dur, c.a_start + c.a_dur)


def _slate_template(channel: str, deps: Deps, run: int, rendition: str) -> bytes:
    from .worker import SLATE_PREFIX

    cache = deps.extra.setdefault("slate_templates", {})
    key = (channel, run, rendition)
    if key not in cache:
        got = deps.objects.get(deps.settings.origin_bucket, f"{channel}/{SLATE_PREFIX}/{run_name(run)}/{rendition}.mp4")
        if got is None:
            raise StoreError(f"slate template of {channel} {run_name(run)} {rendition} is missing")
        cache[key] = got
    data: bytes = cache[key]
    return data


def _slate_part(channel: str, deps: Deps, ladder: Ladder, run: int, claim: PartClaim, now: datetime,
                existing: PartState | None, gap: bool = False) -> PartState | None:
    """Claim a part slot for slate and write its slate part in every rendition (box layer, no ffmpeg)."""
    from ..transcode import slate

    ps = part_store(deps)
    if not ps.claim_part_slate(channel, run, claim, now, now - assemble.STALE_CLAIM):
        return None
    bucket = deps.settings.origin_bucket
    sequence = claim.seq * _FRAGMENTS_PER_CHUNK + claim.index * 8 + 1
    for name in ladder.names:
        template = _slate_template(channel, deps, run, name)
        if name == ladder.audio.name:
            body = slate.compose_audio(template, claim.a_dur // grid.AAC_FRAME, claim.a_start, sequence)
        else:
            body, _ = slate.compose_video(template, claim.v_dur // ladder.frame_ticks, claim.v_start, sequence)
        key = f"{channel}/{name}/{run_name(run)}/{claim.seq:08d}.{claim.index}.m4s"
        deps.objects.put_new(bucket, key, body, content_type(key, name, ladder.audio.name), IMMUTABLE)
    ps.record_part_slate(channel, run, claim.seq, claim.index)
    metrics.add_metric(name="SlateParts", unit=MetricUnit.Count, value=1)
    deps.store.count(channel, "slate_segments", f"part {claim.seq}.{claim.index} of run {run}: {claim.reason}")
    logger.warning("part slot published as slate", extra={"seq": claim.seq, "part": claim.index,
                                                          "reason": claim.reason, "gap": gap})
    return PartState(seq=claim.seq, index=claim.index, received_at=existing.received_at if existing else now,
                     status=existing.status if existing else RECEIVED, v_start=claim.v_start, v_dur=claim.v_dur,
                     a_start=claim.a_start, a_dur=claim.a_dur, fill=SLATE, claimed_at=now, slate_written=True)


def fragments_of(data: bytes) -> tuple[bytes, ...]:
    """The moof+mdat pairs of a part file (its styp and anything else at the top level dropped)."""
    from ..transcode import boxes

    out: list[bytearray] = []
    for box in boxes.iter_boxes(data):
        raw = data[box.offset:box.end]
        if box.type == b"moof":
            out.append(bytearray(raw))
        elif box.type == b"mdat" and out:
            out[-1] += raw
    return tuple(bytes(f) for f in out)


def _write_segment(channel: str, deps: Deps, ladder: Ladder, run: int, seq: int, parts: list[PartState],
                   run_chunks: dict[int, ChunkState], now: datetime) -> None:
    """The full segment of `parts` in every rendition: styp + their fragments, tfdt as transcoded and
    sequence numbers renumbered; then its SEG# item (ready, claimed for media), conditional: if the slot
    went to slate or a whole chunk meanwhile, that stays and the parts were late for it."""
    from ..transcode import boxes

    bucket = deps.settings.origin_bucket
    rname = run_name(run)
    iframes: dict[str, list[list[int]]] = {}
    for name in ladder.names:
        frags: list[bytes] = []
        for p in parts:
            data = deps.objects.get(bucket, f"{channel}/{name}/{rname}/{seq:08d}.{p.index}.m4s")
            if data is None:
                raise StoreError(f"part {seq}.{p.index} of {channel} {name} is listed but missing from the origin")
            frags.extend(fragments_of(data))
        segment = boxes.media_segment(tuple(frags), boxes.decode_time(frags[0]), seq * _FRAGMENTS_PER_CHUNK + 1)
        key = f"{channel}/{name}/{rname}/{seq:08d}.m4s"
        deps.objects.put_new(bucket, key, segment, content_type(key, name, ladder.audio.name), IMMUTABLE)
        if name != ladder.audio.name:
            init = _init(channel, deps, rname, name)
            iframes[name] = [[i.offset, i.first_sample_end, i.duration] for i in boxes.fragments_info(segment, init)
                             if i.starts_with_sync]
    first = parts[0]
    assert first.v_start is not None and first.a_start is not None
    v_dur = sum(p.v_dur or 0 for p in parts)
    a_dur = sum(p.a_dur or 0 for p in parts)
    if any(b.v_start != a.v_end for a, b in itertools.pairwise(parts)):
        logger.warning("parts of a segment do not meet on the grid", extra={"seq": seq})
    # Stable across writers (the last part's worker and the packager may both get here): the same etag.
    etag = hashlib.sha256("|".join(p.etag or f"slate{p.index}" for p in parts).encode()).hexdigest()[:32]
    codecs: dict[str, str] = {}
    for p in parts:
        codecs.update(p.codecs)
    item: dict[str, Any] = {
        "etag": etag, "status": RECEIVED, "received_at": iso(min(p.received_at for p in parts)),
        "v_start": first.v_start, "v_dur": v_dur, "a_start": first.a_start, "a_dur": a_dur,
        "duration": v_dur / grid.TICKS, "media_start": first.v_start / grid.TICKS,
        "done": set(ladder.names), "done_at": iso(now), "fill": MEDIA, "claimed_at": iso(now), "queued": True,
        "parts": len(parts), "source_key": "", "expires_at": int(now.timestamp() + 7 * 86400),
        **{f"codec_{k}": v for k, v in codecs.items()}, **{f"ifr_{k}": v for k, v in iframes.items()},
    }
    try:
        deps.store.put_chunk(channel, run, seq, item)
    except ConflictError as e:
        logger.warning("full segment from parts not recorded: the slot is taken", extra={"seq": seq, "why": str(e)})
        metrics.add_metric(name="LateChunks", unit=MetricUnit.Count, value=1)
        return
    stored = deps.store.chunk(channel, run, seq)
    if stored is not None:
        run_chunks[seq] = chunk_state(stored)
    metrics.add_metric(name="SegmentsFromParts", unit=MetricUnit.Count, value=1)


def _init(channel: str, deps: Deps, run: str, rendition: str) -> bytes:
    cache = deps.extra.setdefault("inits", {})
    key = (channel, run, rendition)
    if key not in cache:
        cache[key] = deps.objects.get(deps.settings.origin_bucket, f"{channel}/{rendition}/{run}/init.mp4") or b""
    data: bytes = cache[key]
    return data


def _timer(channel: str, deps: Deps, pub: Mapping[str, Any], when: datetime, now: datetime) -> None:
    """A packager run when a waiting part slot can be decided (SQS delays are whole seconds, so at most
    one second late; every new part wakes the packager sooner anyway)."""
    pending = float(pub.get(LL_TIMER) or 0)
    at, t = when.timestamp(), now.timestamp()
    if t < pending <= at + 1:
        return
    deps.store.set_timer(channel, LL_TIMER, at)
    if deps.settings.package_queue_url:
        deps.queue.send(deps.settings.package_queue_url, PackageMessage(channel).body(),
                        delay=max(1, int(at - t + 0.999)))


def listed_parts(spec: PartSpec, states: Mapping[tuple[int, int], PartState], renditions: frozenset[str],
                 start_seq: int | None, prev_end: tuple[int, int] | None, now: datetime) -> list[PartState]:
    """The parts a playlist may list after the last full segment (what the packager would list; no claims)."""
    plan = plan_parts(spec, states, renditions, now, start_seq=start_seq, prev_end=prev_end,
                      wait=timedelta(days=1), stale=assemble.STALE_CLAIM)
    return list(plan.listed)


__all__ = ["PartStore", "before_plan", "channel_spec", "fragments_of", "listed_parts", "on_part_uploaded",
           "part_state", "part_store", "transcode_part"]
