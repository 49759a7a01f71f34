"""Use case `transcode_chunk`: one SQS message = one chunk (or one chunk x rendition).

Failure model: any exception propagates, SQS makes the message visible again after the
visibility timeout, and after 3 receives it lands in the DLQ (`replay.replay_dlq` moves it
back). A retried job rewrites byte-identical outputs, and `done` is a set, so a retry after a
crash between "uploaded" and "marked done" is harmless.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import TranscodeError
from ..media.ladder import Ladder
from ..records import parse_iso
from .assemble import INVALID
from .deps import Deps
from .objects import IMMUTABLE, content_type, md5_hex
from .obs import MetricUnit, bind, logger, metrics
from .queues import PackageMessage, TranscodeMessage


def transcode_chunk(msg: TranscodeMessage, deps: Deps) -> str:
    with bind(channel=msg.channel, seq=msg.seq):
        try:
            return _transcode(msg, deps)
        except Exception:
            metrics.add_metric(name="TranscodeErrors", unit=MetricUnit.Count, value=1)
            logger.exception("transcode failed; SQS will retry, then dead-letter")
            raise


def _transcode(msg: TranscodeMessage, deps: Deps) -> str:
    store = deps.store
    item = store.chunk(msg.channel, msg.seq)
    if item is None or item.get("etag") != msg.etag:
        logger.info("job for a superseded or unknown chunk dropped")
        return "superseded"
    if item.get("status") == INVALID:
        return "invalid"
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

    media_start = float(item["media_start"])
    duration = float(item.get("duration") or ladder.segment_duration)
    splices = _splice_points(deps, msg.channel, media_start, duration, item)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xcode-") as tmp:
        src = Path(tmp) / f"source.{item.get('ext', 'ts')}"
        deps.objects.download(str(item.get("bucket") or deps.settings.ingest_bucket), str(item["source_key"]), src)
        from ..transcode.job import TranscodeJob

        job = TranscodeJob(channel_id=msg.channel, seq=msg.seq, source_path=str(src),
                           output_dir=str(Path(tmp) / "out"), ladder=ladder, media_start=media_start,
                           renditions=tuple(msg.renditions), splice_points=splices)
        result = deps.transcode(job)
        names = _upload(deps, msg, ladder, result)
    wall = time.monotonic() - started
    cpu = float(getattr(result, "cpu_seconds", wall))
    store.mark_done(msg.channel, msg.seq, msg.etag, names, cpu)
    metrics.add_metric(name="TranscodeSeconds", unit=MetricUnit.Seconds, value=wall)
    metrics.add_metric(name="TranscodeCpuSeconds", unit=MetricUnit.Seconds, value=cpu)
    logger.info("chunk transcoded", extra={"renditions": names, "wall_seconds": round(wall, 3),
                                           "cpu_seconds": round(cpu, 3)})
    _wake_packager(msg, deps)
    return "done"


def _upload(deps: Deps, msg: TranscodeMessage, ladder: Ladder, result: Any) -> list[str]:
    bucket = deps.settings.origin_bucket
    names: list[str] = []
    for out in result.outputs:
        folder = f"{msg.channel}/{out.rendition}"
        if out.init_path:
            body = Path(out.init_path).read_bytes()
            key = f"{folder}/init.mp4"
            # The init segment is identical for every chunk of a channel: write it once (and again
            # only if the ladder changed it), not once per chunk.
            if deps.objects.etag(bucket, key) != md5_hex(body):
                deps.objects.put(bucket, key, body, content_type(key, out.rendition, ladder.audio.name), IMMUTABLE)
        seg = Path(out.segment_path)
        key = f"{folder}/{seg.name}"
        deps.objects.put(bucket, key, seg.read_bytes(), content_type(key, out.rendition, ladder.audio.name),
                         IMMUTABLE)
        names.append(str(out.rendition))
    return names


def _splice_points(deps: Deps, channel: str, media_start: float, duration: float,
                   item: dict[str, Any]) -> tuple[float, ...]:
    """Ad-break splice times inside this chunk (seconds from its start): the transcoder forces an
    IDR there so the break can start on a fragment boundary."""
    pub = deps.store.pub(channel)
    if not pub.get("availability_start"):
        return ()
    avail = parse_iso(str(pub["availability_start"]))
    try:
        breaks = deps.ad_breaks(deps.store.ad_break_items(channel))
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
    deps.queue.send(deps.settings.package_queue_url, PackageMessage(msg.channel, msg.seq).body())
