"""Use case `transcode_chunk`: one SQS message = one chunk (or one chunk x rendition), or a run's slate.

Failure model: any exception propagates, SQS makes the message visible again after the
visibility timeout, and after 3 receives it lands in the DLQ (`replay.replay_dlq` moves it
back). A retried job rewrites byte-identical outputs, segment writes are write-once, and `done` is
a set, so a retry after a crash between "uploaded" and "marked done" is harmless.

What reaches the output is exactly what ingest accepted: the source is fetched by the object
version (or ETag) ingest recorded. The slot's URL is claimed (SEG#.fill = "media") after the encode
and before the upload; if the packager has published the slot as slate by then, the chunk is late:
counted and dropped, never written over the slate.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, StoreError, TranscodeError
from ..media.ladder import Ladder
from ..records import parse_iso, run_name
from .assemble import INVALID, SLATE
from .deps import Deps
from .objects import IMMUTABLE, content_type
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage, TranscodeMessage

MAX_JOB_SECONDS = 600.0  # a job never runs longer than this, whatever the Lambda allows
TIMEOUT_MARGIN = 20.0  # seconds left for uploads and bookkeeping after ffmpeg is killed
SLATE_PREFIX = "_slate"


def transcode_chunk(msg: TranscodeMessage, deps: Deps) -> str:
    with bind(channel=msg.channel, seq=msg.seq, run=msg.run, correlation_id=msg.correlation_id or None):
        try:
            if msg.kind == "slate":
                return _render_slate(msg, deps)
            if msg.kind == "part":  # a low-latency part (chalicelib.pipeline.parts)
                from . import parts

                return parts.transcode_part(msg, deps)
            return _transcode(msg, deps)
        except Exception:
            metrics.add_metric(name="TranscodeErrors", unit=MetricUnit.Count, value=1)
            logger.exception("transcode failed; SQS will retry, then dead-letter")
            raise


def job_timeout(deps: Deps) -> float:
    """ffmpeg must be killed before the Lambda is: the invocation's remaining time minus a margin."""
    context = deps.extra.get("lambda_context")
    remaining = MAX_JOB_SECONDS
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000.0 - TIMEOUT_MARGIN
    return max(5.0, min(MAX_JOB_SECONDS, remaining))


def _transcode(msg: TranscodeMessage, deps: Deps) -> str:
    store = deps.store
    near = store.neighbours(msg.channel, msg.run, msg.seq)
    item = near.get(msg.seq)
    if item is None or item.get("etag") != msg.etag:
        logger.info("job for a superseded or unknown chunk dropped")
        return "superseded"
    if item.get("status") == INVALID:
        return "invalid"
    if item.get("fill") == SLATE:
        return _late(msg, deps, "its slot was published as slate before the transcode started")
    meta = store.channel(msg.channel)
    ladder = deps.ladder(meta)
    wanted = msg.renditions or ladder.names
    unknown = set(wanted) - set(ladder.names)
    if unknown:
        raise TranscodeError(f"job asks for renditions {sorted(unknown)} not in the ladder {ladder.names}")
    done = set(item.get("done") or ())
    if set(wanted) <= done:
        logger.info("job already done (redelivery)")
        _wake_packager(msg, deps)
        return "duplicate"

    media_start = float(item["start_ticks"]) / 90_000
    duration = float(item.get("v_dur") or 0) / 90_000 or ladder.segment_duration
    splices = _splice_points(deps, msg, media_start, duration)
    prev, nxt = near.get(msg.seq - 1), near.get(msg.seq + 1)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xcode-") as tmp:
        src = Path(tmp) / f"source.{item.get('ext', 'ts')}"
        bucket = str(item.get("bucket") or deps.settings.ingest_bucket)
        try:
            deps.objects.download(bucket, str(item["source_key"]), src,
                                  version_id=str(item.get("version_id") or msg.version_id or ""),
                                  etag=str(item.get("etag") or ""))
        except NotFoundError as e:
            raise TranscodeError(f"the accepted chunk is gone from the ingest bucket: {e}") from e
        preroll = _preroll(deps, item, prev, Path(tmp))
        from ..transcode.job import TranscodeJob
        from ..transcode.probe import from_record

        # Ingest's probe of this very object version (and of the predecessor, when that primes the
        # encoder): no second ffmpeg start per chunk just to read timestamps again.
        known = from_record(item.get("probe"))
        prev_known = from_record(prev.get("probe")) if preroll and prev is not None else None

        job = TranscodeJob(channel_id=msg.channel, seq=msg.seq, source_path=str(src),
                           output_dir=str(Path(tmp) / "out"), ladder=ladder, media_start=media_start,
                           renditions=tuple(msg.renditions), splice_points=splices, timeout=job_timeout(deps),
                           start_ticks=int(item["start_ticks"]), first_frame=int(item["first_frame"]),
                           frames=int(item["frames"]), audio_not_before=_audio_end(prev),
                           audio_not_after=_audio_start(nxt), preroll_path=preroll, info=known,
                           preroll_audio=prev_known.audio if prev_known is not None else None)
        result = deps.transcode(job)
        if not store.claim_media(msg.channel, msg.run, msg.seq, msg.etag, deps.now()):
            return _late(msg, deps, "its slot was published as slate while it was transcoding")
        names = _upload(deps, msg, ladder, result)
    wall = time.monotonic() - started
    cpu = float(getattr(result, "cpu_seconds", wall))
    store.mark_done(msg.channel, msg.run, msg.seq, msg.etag, names, cpu, _facts(result, ladder), deps.now())
    plan = getattr(result, "audio", None)
    if plan is not None and plan.cold:
        metrics.add_metric(name="ColdAudioStarts", unit=MetricUnit.Count, value=1)
    if getattr(result, "audio_padded", 0):
        metrics.add_metric(name="AudioPaddedSamples", unit=MetricUnit.Count, value=int(result.audio_padded))
    metrics.add_metric(name="TranscodeSeconds", unit=MetricUnit.Seconds, value=wall)
    metrics.add_metric(name="TranscodeCpuSeconds", unit=MetricUnit.Seconds, value=cpu)
    logger.info("chunk transcoded", extra={"renditions": names, "wall_seconds": round(wall, 3),
                                           "cpu_seconds": round(cpu, 3),
                                           "audio": getattr(plan, "mode", None)})
    _wake_packager(msg, deps)
    return "done"


def _audio_end(item: dict[str, Any] | None) -> int | None:
    """Where the previous slot's audio ends, when that is already fixed (slated, transcoded or planned)."""
    if item is None or item.get("status") == INVALID:
        return None
    if item.get("fill") == SLATE and item.get("slate_a_start") is not None:
        return int(item["slate_a_start"]) + int(item["slate_a_dur"])
    if item.get("a_start") is not None and item.get("a_dur") is not None:
        return int(item["a_start"]) + int(item["a_dur"])
    return None


def _audio_start(item: dict[str, Any] | None) -> int | None:
    """Where the next slot's audio starts, once that slot is slated or transcoded (not just planned)."""
    if item is None:
        return None
    if item.get("fill") == SLATE and item.get("slate_a_start") is not None:
        return int(item["slate_a_start"])
    if item.get("done_at") and item.get("a_start") is not None:
        return int(item["a_start"])
    return None


def _preroll(deps: Deps, item: dict[str, Any], prev: dict[str, Any] | None, tmp: Path,
             prev_name: str | None = None) -> str:
    """The previous chunk's source when this chunk's audio is re-encoded and continues it (same format,
    meeting on the source clock): its tail primes the encoder. "" otherwise (a cold start).
    prev_name: the previous source's object name when it is not `{seq - 1:08d}.{ext}` (LL parts)."""
    if item.get("a_mode") != "encode":
        return ""
    if prev is None:
        return _unrecorded_preroll(deps, item, tmp, prev_name)
    if prev.get("status") == INVALID or not prev.get("source_key"):
        return ""
    same = all(prev.get(k) == item.get(k) for k in ("a_codec", "a_rate", "a_channels", "ext"))
    rate = int(item.get("a_rate") or 48_000)
    frame = 90_000 * 1024 / rate
    if not same or prev.get("a_src_end") is None or item.get("a_src_start") is None or \
            abs(int(item["a_src_start"]) - int(prev["a_src_end"])) > frame:
        return ""
    path = tmp / f"preroll.{prev.get('ext', 'ts')}"
    try:
        deps.objects.download(str(prev.get("bucket") or deps.settings.ingest_bucket), str(prev["source_key"]), path,
                              version_id=str(prev.get("version_id") or ""), etag=str(prev.get("etag") or ""))
    except NotFoundError:
        return ""  # gone (expired, replaced): start cold rather than fail the chunk
    return str(path)


def _unrecorded_preroll(deps: Deps, item: dict[str, Any], tmp: Path, prev_name: str | None = None) -> str:
    """The previous chunk when its ingest has not recorded it yet (uploads racing, or it is still being
    probed): read straight from the ingest bucket under its conventional key. Nothing about it is trusted:
    the transcoder probes it and uses it only when its audio meets this chunk's on the source clock."""
    seq, ext = int(item["seq"]), str(item.get("ext") or "ts")
    source_key = str(item.get("source_key") or "")
    if (seq <= 0 and not prev_name) or "/" not in source_key:
        return ""
    key = f"{source_key.rsplit('/', 1)[0]}/{prev_name or f'{seq - 1:08d}.{ext}'}"
    path = tmp / f"preroll.{ext}"
    try:
        deps.objects.download(str(item.get("bucket") or deps.settings.ingest_bucket), key, path)
    except (NotFoundError, StoreError):
        return ""  # not uploaded (yet), or unreadable: start cold
    return str(path)


def _facts(result: Any, ladder: Ladder) -> dict[str, Any]:
    """What the renditions really hold: the packager lists exactly this (and the next chunk's audio
    starts where this one ends)."""
    out: dict[str, Any] = {}
    for o in result.outputs:
        if o.codecs:
            out[f"codec_{o.rendition}"] = o.codecs
        if o.rendition == ladder.audio.name:
            out["a_start"], out["a_dur"] = int(o.start_ticks), int(o.duration_ticks)
        else:
            out["v_start"], out["v_dur"] = int(o.start_ticks), int(o.duration_ticks)
            if o.iframes:
                out[f"ifr_{o.rendition}"] = [list(map(int, x)) for x in o.iframes]
    return out


_INITS: set[str] = set()  # init segments this process already made sure of (write-once, per run)


def _upload(deps: Deps, msg: TranscodeMessage, ladder: Ladder, result: Any, name: str = "") -> list[str]:
    """`name`: the segment file name at the origin (default: the transcoder's, `{seq:08d}.m4s`)."""
    bucket = deps.settings.origin_bucket
    names: list[str] = []
    run = run_name(msg.run)
    for out in result.outputs:
        folder = f"{msg.channel}/{out.rendition}/{run}"
        if out.init_path:
            key = f"{folder}/init.mp4"
            # The init segment is identical for every chunk of a run: written once (the first job to get
            # there), never rewritten (it is served as immutable).
            if key not in _INITS:
                deps.objects.put_new(bucket, key, Path(out.init_path).read_bytes(),
                                     content_type(key, out.rendition, ladder.audio.name), IMMUTABLE)
                _INITS.add(key)
        seg = Path(out.segment_path)
        key = f"{folder}/{name or seg.name}"
        # Write-once: a retry writes the same bytes, and finding them there is fine.
        deps.objects.put_new(bucket, key, seg.read_bytes(), content_type(key, out.rendition, ladder.audio.name),
                             IMMUTABLE)
        names.append(str(out.rendition))
    return names


def _render_slate(msg: TranscodeMessage, deps: Deps) -> str:
    """A run's slate templates (one per rendition, in the ladder's exact format), then tell the packager."""
    meta = deps.store.channel(msg.channel)
    if meta is None:
        return "unknown"
    ladder = deps.ladder(meta)
    if ladder.container != "cmaf":
        deps.store.set_slate_ready(msg.channel, msg.run)
        return "no slate for MPEG-TS"
    run = run_name(msg.run)
    with tempfile.TemporaryDirectory(prefix="slate-") as tmp:
        templates = deps.render_slate(ladder, tmp, meta.name or msg.channel, job_timeout(deps))
        for rendition, path in templates.files.items():
            key = f"{msg.channel}/{SLATE_PREFIX}/{run}/{rendition}.mp4"
            deps.objects.put(deps.settings.origin_bucket, key, Path(path).read_bytes(), "video/mp4", "no-store")
    deps.store.set_slate_ready(msg.channel, msg.run)
    logger.info("slate rendered", extra={"renditions": sorted(templates.files)})
    _wake_packager(msg, deps)
    return "slate"


def _late(msg: TranscodeMessage, deps: Deps, why: str) -> str:
    if deps.store.mark_late(msg.channel, msg.run, msg.seq):
        metrics.add_metric(name="LateChunks", unit=MetricUnit.Count, value=1)
        deps.store.count(msg.channel, "late_chunks", f"chunk {msg.seq} of run {msg.run}: {why}")
    logger.warning("late chunk dropped", extra={"why": why})
    return "late"


def _splice_points(deps: Deps, msg: TranscodeMessage, media_start: float, duration: float) -> tuple[float, ...]:
    """Ad-break splice times inside this chunk (seconds from its start): the transcoder forces an
    IDR there so the break can start on a fragment boundary."""
    run_item = deps.extra.setdefault("runs", {}).get((msg.channel, msg.run)) or deps.store.run(msg.channel, msg.run)
    if not run_item or not run_item.get("availability_start"):
        return ()
    avail = parse_iso(str(run_item["availability_start"]))
    try:
        breaks = deps.ad_breaks(deps.store.ad_break_items(msg.channel))
    except Exception:  # the control plane's reader is optional here: a missed IDR is not fatal
        logger.exception("could not read ad breaks; transcoding without splice points")
        return ()
    points = []
    for b in breaks:
        if b.cancelled:
            continue
        end = b.returned_at or b.start + timedelta(seconds=b.duration)
        for when in (b.start, end):
            t = (when - avail).total_seconds() - media_start
            if 0.0 < t < duration:
                points.append(round(t, 6))
    return tuple(sorted(set(points)))


def _wake_packager(msg: TranscodeMessage, deps: Deps) -> None:
    """Package right here, in the worker that just finished: it saves a queue hop and a Lambda
    invocation per chunk (the largest share of upload->listed latency after the encode itself).
    The lease protocol makes it safe (a busy channel just records the work for its holder). If
    packaging fails, the package queue takes over, so the transcode itself is not retried."""
    from . import publish

    try:
        publish.package(msg.channel, deps)
        return
    except Exception:
        logger.exception("inline packaging failed; handing over to the package queue")
    deps.queue.send(deps.settings.package_queue_url,
                    PackageMessage(msg.channel, msg.seq, correlation_id=msg.correlation_id).body())
