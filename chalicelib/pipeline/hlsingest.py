"""HLS ingest: an encoder that writes its own HLS into the ingest bucket is a source, cues included.

Layout the encoder writes (MediaLive/Elemental HLS output to S3, ffmpeg's hls muxer, ...):

    s3://{ingest bucket}/{channel}/hls/{name}.m3u8     one media playlist (not a multivariant one)
    s3://{ingest bucket}/{channel}/hls/{segment}.ts    its MPEG-TS segments, at the URIs the playlist
                                                       names (relative, inside {channel}/hls/)

Each playlist upload is read with `media.source.parse_source_playlist`; every segment it lists that is
not recorded yet becomes the chunk numbered by its media sequence number (EXT-X-MEDIA-SEQUENCE +
position), and goes through ingest exactly like a pushed chunk (probe, clock, in-band SCTE-35, slate,
transcode). Segment uploads themselves are only noted: a segment is taken once its playlist lists it,
which is when the encoder has finished writing it. The playlist's cue tags (EXT-X-CUE-OUT / -CONT /
-IN, EXT-OATCLS-SCTE35, EXT-X-DATERANGE SCTE35-OUT/IN, EXT-X-SCTE35) become source breaks placed on
our media clock at the segment they are attached to, with the encoder's binary cue kept verbatim (a
cue tag without one gets a splice_insert of our own). Re-reading the playlist every segment is
idempotent: a break is keyed on its run, event id and splice time.
"""

from __future__ import annotations

import posixpath
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ValidationError
from ..media import scte35
from ..media.adbreaks import SourceSignal, source_signal
from ..media.source import parse_source_playlist
from ..records import INGEST_STATES, parse_iso, validate_id
from .deps import Deps
from .events import Rejection, Upload
from .obs import MetricUnit, logger, metrics

HLS_PREFIX = "hls"
_KEY_RE = re.compile(r"^(?P<channel>[^/]{1,63})/hls/(?P<rest>.+)$")
MAX_PLAYLIST_BYTES = 1 << 20
_UNDATED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PlaylistUpload:
    bucket: str
    key: str
    channel: str
    etag: str
    size: int
    event_time: datetime | None = None


@dataclass(frozen=True)
class SegmentFile:
    """A segment the encoder wrote: ingested when its playlist lists it."""

    key: str
    channel: str


def is_hls_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))


def classify(bucket: str, key: str, etag: str, size: int, event_time: datetime | None
             ) -> PlaylistUpload | SegmentFile | Rejection:
    m = _KEY_RE.match(key)
    assert m is not None
    try:
        channel = validate_id(m["channel"])
    except ValidationError as e:
        return Rejection(key, str(e))
    if key.endswith(".m3u8"):
        return PlaylistUpload(bucket, key, channel, etag.strip('"'), int(size or 0), event_time)
    if key.endswith(".ts"):
        return SegmentFile(key, channel)
    return Rejection(key, f"{key[:120]!r}: an encoder's HLS in {channel}/hls/ must be a media playlist (.m3u8) and "
                          "MPEG-TS segments (.ts)")


def handle(item: PlaylistUpload | SegmentFile, deps: Deps) -> str:
    if isinstance(item, SegmentFile):
        return "segment: ingested when its playlist lists it"
    return on_playlist(item, deps)


def on_playlist(p: PlaylistUpload, deps: Deps) -> str:
    from . import ingest

    store = deps.store
    meta = store.channel(p.channel)
    if meta is None:
        logger.warning("encoder playlist for an unknown channel", extra={"key": p.key})
        metrics.add_metric(name="RejectedChunks", unit=MetricUnit.Count, value=1)
        return "rejected: unknown channel"
    if meta.state not in INGEST_STATES:
        return _error(deps, p, f"channel is {meta.state}, not accepting its encoder's HLS")
    body = deps.objects.get(p.bucket, p.key)
    if body is None:
        return "playlist gone"
    if len(body) > MAX_PLAYLIST_BYTES:
        return _error(deps, p, f"playlist is {len(body)} bytes (limit {MAX_PLAYLIST_BYTES})")
    try:
        # Without EXT-X-PROGRAM-DATE-TIME the parser dates the segments from an arbitrary base: breaks are
        # placed by the segment their tags are attached to, on our media clock, never by the encoder's dates.
        pl = parse_source_playlist(body.decode("utf-8", "replace"), base_pdt=_UNDATED)
    except ValidationError as e:
        return _error(deps, p, str(e))
    run = meta.current_run
    folder = posixpath.dirname(p.key)
    results: list[str] = []
    for seg in pl.segments:
        key = posixpath.normpath(posixpath.join(folder, seg.uri))
        if not key.startswith(f"{p.channel}/{HLS_PREFIX}/") or not key.endswith(".ts"):
            results.append(_error(deps, p, f"segment {seg.uri!r} must be an MPEG-TS file inside {p.channel}/hls/"))
            continue
        if store.chunk(p.channel, run, seg.seq) is not None:
            continue  # taken from an earlier version of the playlist
        etag = deps.objects.etag(p.bucket, key)
        if etag is None:
            continue  # listed before the upload is visible: the next playlist lists it again
        u = Upload(p.bucket, key, p.channel, seg.seq, "ts", etag.strip('"'), 0, p.event_time)
        results.append(f"{seg.seq}: {ingest.idempotent_upload(u, deps)}")
    results += _cues(p, deps, pl, run)
    metrics.add_metric(name="SourcePlaylists", unit=MetricUnit.Count, value=1)
    return "; ".join(results) or "no new segments"


def _as_upload(p: PlaylistUpload) -> Upload:
    return Upload(p.bucket, p.key, p.channel, 0, "m3u8", p.etag, p.size, p.event_time)


def _error(deps: Deps, p: PlaylistUpload, why: str) -> str:
    deps.store.count_error(p.channel, f"encoder playlist {p.key}: {why}")
    logger.warning("encoder playlist refused", extra={"key": p.key, "why": why})
    return f"rejected: {why}"


def _cues(p: PlaylistUpload, deps: Deps, pl: Any, run: int) -> list[str]:
    """The playlist's breaks -> source breaks, once the segment each one is attached to is ingested."""
    from . import cues

    if not pl.breaks:
        return []
    meta = deps.store.channel(p.channel)
    run_item = deps.store.run(p.channel, run)
    if meta is None or not run_item or not run_item.get("availability_start"):
        return []
    avail = parse_iso(str(run_item["availability_start"]))
    u = _as_upload(p)
    horizon_pad = float(meta.dvr_window or deps.settings.dvr_window)
    out: list[str] = []
    items = [b for b in deps.store.ad_break_items(p.channel) if b.get("source") == "source" and b.get("run") == run]
    for brk, pts in zip(pl.breaks, pl.points, strict=True):
        chunk = deps.store.chunk(p.channel, run, pts.out_seq)
        if not chunk or chunk.get("start_ticks") is None:
            continue  # its segment is not ingested yet (or was refused): the next playlist tries again
        seg_start = float(chunk["start_ticks"]) / scte35.TICKS_PER_SECOND
        media = seg_start + pts.out_offset
        event_id = brk.splice_event_id if brk.scte35_out else zlib.crc32(f"{run}:{round(media * 1000)}".encode())
        cue = scte35.decode(brk.scte35_out) if brk.scte35_out else scte35.splice_insert(
            event_id, media, brk.duration or None)
        sig = _signal(cue, media, brk.duration, cues.scte_filter(meta))
        chunk_end = seg_start + float(chunk.get("v_dur") or 0) / scte35.TICKS_PER_SECOND
        if sig.action == "skip":
            out.append(f"ignored: {sig.reason}")
            continue
        out.append(cues.apply_signal(u, deps, run, sig, items, avail, seg_start, chunk_end + horizon_pad))
        if pts.in_seq is None:
            continue
        back_chunk = deps.store.chunk(p.channel, run, pts.in_seq)
        if not back_chunk or back_chunk.get("start_ticks") is None:
            continue
        at = float(back_chunk["start_ticks"]) / scte35.TICKS_PER_SECOND
        planned_end = media + (brk.duration or 0)
        if brk.duration and abs(at - planned_end) < 0.5 and not brk.scte35_in:
            continue  # returned at its planned end: nothing to record
        back = scte35.decode(brk.scte35_in) if brk.scte35_in else scte35.splice_insert(sig.event_id, at, None, False,
                                                                                        False)
        in_sig = SourceSignal("in", back, sig.event_id, at, None)
        out.append(cues.apply_signal(u, deps, run, in_sig, items, avail, at, at + horizon_pad))
    return out


def _signal(cue: scte35.Cue, media: float, duration: float, scte_filter: tuple[str, ...]) -> SourceSignal:
    """The playlist's cue at the media time of the segment it is attached to (a playlist tag places the
    splice at its segment, whatever PTS the cue carries on the encoder's clock)."""
    sig = source_signal(cue, position=None, src_start=0, media_start=0, scte_filter=scte_filter)
    return SourceSignal(sig.action if sig.action != "in" else "skip", cue, sig.event_id, media,
                        sig.duration if sig.duration is not None else (duration or None),
                        sig.reason or ("an in-cue on a break's out tag" if sig.action == "in" else ""))
