"""The LL-HLS manifest origin (issue #12): low-latency playlists rendered per request, with blocking reload.

Paths (relative to the origin root, as CloudFront forwards them; the same paths the demo server routes):

    /{channel}/ll.m3u8                              multivariant playlist -> {rendition}/ll.m3u8
    /{channel}/{rendition}/ll.m3u8                  media playlist with parts; delivery directives
                                                    _HLS_msn, _HLS_part (blocking reload), _HLS_skip (delta)
    /{channel}/{rendition}/{run}/{seq:08d}.{p}.m4s  a part; a request for the hinted (next) part waits
                                                    until it exists (preload hints)

Rendered from the channel timeline store, never from text on S3: the packager's committed PUB state and
SEG# items of the newest live window, plus the PRT# items of the newest parts, through the packager's own
planner (`assemble.plan`) and the same HLS renderer as every other playlist (`media.hls.render_ll`). The
segment being written is handed to the planner as a provisional chunk, so its PDT, Period, discontinuity,
EXT-X-MAP and ad markers are exactly what the packager publishes for it once it is complete.

Blocking (RFC 8216bis 6.2.5.2): a request for (msn, part) is held until the playlist holds it, polling the
PRT# items every POLL seconds (one small query, shared by concurrent requests in one process), at most
3 target durations, then 503. The rest of the channel's state is read again every REFRESH seconds off the
polls' path (`Views`): a part published while that read goes on is listed at the next poll. 400 for a
malformed or negative directive, _HLS_part without _HLS_msn, an
msn beyond the last segment + 2, a part beyond the advance limit. 404 for an unknown channel, rendition or
path, and for a channel that is not low-latency.

Stop: a channel that stops (STOPPING, STOPPED, ...; deleted too) releases every blocked request at once with its
playlist and EXT-X-ENDLIST, served `no-store`. The regular live playlists stay open across a stop (a restart continues
them) but an LL request cannot wait for a restart: it may hold at most 3 target durations, and answering
503 until then would look like an origin failure to the player; ENDLIST ends playback cleanly. Because the
response is never cached, a restart reopens the very same URL for the next request.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ValidationError
from ..media import grid, hls
from ..media.ladder import Ladder
from ..media.parts import RECEIVED, Directives, Edge, PartSpec, PartState, parse_directives
from ..media.timeline import Timeline
from ..records import ID_RE, INGEST_STATES, ChannelRecord, run_name
from . import assemble
from .assemble import MEDIA, ChunkState, PeriodState, PublishState
from .deps import Deps
from .objects import IMMUTABLE, content_type
from .obs import MetricUnit, logger, metrics
from .parts import channel_spec, listed_parts, part_state, part_store
from .store import chunk_state, publish_state

POLL = 0.03  # seconds between looks at the PRT# items while a request is held (near the part's due time)
EARLY = 0.15  # seconds before the next part is due that polling starts (until then nothing can change)
RECENT_PARTS = 8  # published parts whose transcode times predict the next one's
REFRESH = 2.0  # seconds a view's channel record, PUB state and windows may be reused (a stop is seen this late)
LATE_REFRESH = 0.3  # seconds a due full read may wait for a moment no part is expected (then it is done anyway)
SLACK = 0.2  # seconds without an expected part in which a due full read is started (it loads the store)
ABANDON = 2 * REFRESH  # seconds after which a full read still going on is given up (a frozen Lambda's)
HOLD_TARGETS = 3  # a request is never held longer than this many target durations (RFC 8216bis 6.2.5.2)
PLAYLIST = "application/vnd.apple.mpegurl"
_RUN_RE = re.compile(r"^r[0-9]{1,6}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # a rendition folder
_PART_RE = re.compile(r"^(?P<seq>[0-9]{8,12})\.(?P<part>[0-9])\.m4s$")


@dataclass(frozen=True)
class Request:
    path: str
    query: tuple[tuple[str, str], ...] = ()
    method: str = "GET"

    @classmethod
    def of(cls, path: str, query: str = "", method: str = "GET") -> Request:
        return cls(path, tuple(parse_qsl(query, keep_blank_values=True)), method.upper())


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _error(status: int, message: str, cache: str = "no-store") -> Response:
    import json

    return Response(status, {"Content-Type": "application/json", "Cache-Control": cache},
                    json.dumps({"error": {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed",
                                          503: "ServiceUnavailable"}.get(status, "Error"),
                                "message": message}).encode())


# --------------------------------------------------------------------------- the view of a channel


@dataclass(frozen=True)
class View:
    """One consistent look at a low-latency channel: what its LL playlists show right now."""

    meta: ChannelRecord
    ladder: Ladder
    spec: PartSpec
    timeline: Timeline | None  # None: nothing listable yet
    ll: hls.LowLatency
    edge: Edge
    target: int
    parts_key: tuple[Any, ...] = ()  # what the parts looked like (a change means: render again)
    fetched: float = 0.0  # monotonic time of the full read
    checked: float = 0.0  # monotonic time of the last look at the parts
    current: int = 0
    resume: tuple[int | None, tuple[int, int] | None] = (None, None)
    states: Mapping[tuple[int, int], PartState] = field(default_factory=dict)
    last_ready: datetime | None = None  # when the last listed part was published
    inputs: Inputs | None = None
    complete: int | None = None  # the segment being written has all its parts: its SEG# is about to appear
    items: Mapping[tuple[int, int], Mapping[str, Any]] = field(default_factory=dict)  # the PRT# items it shows

    def quiet(self, now: datetime) -> float:
        """Seconds in which no new part is expected, so a held request sleeps until shortly before then
        instead of polling all along. A part is published no sooner than the fastest recent transcode after
        it was received: the oldest part being transcoded is due then; with none, the next upload is due a
        part duration after the newest (the encoder's cadence). Anchored on receptions, not on the last
        publish: a fast transcode after a slow one comes sooner than a part duration after it."""
        renditions = frozenset(self.ladder.names)
        filled = [s for s in self.states.values() if s.filled(renditions)]
        if not filled:
            return 0.0
        recent = sorted(filled, key=lambda s: s.received_at)[-RECENT_PARTS:]
        fastest = max(0.0, min((s.ready_at - s.received_at).total_seconds() for s in recent))
        pending = [s.received_at for s in self.states.values() if s.status == RECEIVED and not s.filled(renditions)]
        if pending:
            due = min(pending) + timedelta(seconds=fastest)
        else:
            newest = max(s.received_at for s in self.states.values())
            due = newest + timedelta(seconds=self.spec.part_duration + fastest)
        return (due - now).total_seconds() - EARLY

    @property
    def final(self) -> bool:
        """No request may wait: the channel stopped (or was deleted, or ended)."""
        return self.meta.state not in INGEST_STATES or (self.timeline is not None and self.timeline.ended)


def _trimmed(prev: PublishState, keep: Mapping[int, int]) -> PublishState:
    """The PUB state as if each run started at `keep[run]`: what the planner needs to lay out only the
    newest segments (the packager keeps the whole DVR window). A Period cut in the middle continues under
    its own id, PDT anchor and offsets, without a discontinuity; the discontinuities before the cut count
    in EXT-X-DISCONTINUITY-SEQUENCE."""
    runs = tuple(replace(r, first_seq=max(r.first_seq, keep.get(r.run, r.first_seq))) for r in prev.runs)
    periods: list[PeriodState] = []
    before = prev.disc_before
    for r in runs:
        own = sorted((p for p in prev.periods if p.run == r.run), key=lambda p: p.first_seq)
        cut = r.first_seq
        emptied = r.last_seq < cut
        before += sum(1 for p in own if p.disc and (emptied or p.first_seq < cut))
        if emptied:
            continue
        inside = [p for p in own if p.first_seq <= cut]
        if inside and inside[-1].first_seq < cut:
            periods.append(replace(inside[-1], first_seq=cut, disc=False))
        periods.extend(p for p in own if p.first_seq >= cut)
    return replace(prev, runs=runs, periods=tuple(periods), disc_before=before)


@dataclass
class _Read:
    """A full read of a channel's state going on off the looks' path (one at a time per channel)."""

    started: float  # the caller's clock when it was asked for: what the inputs' age counts from
    finished: bool = False
    inputs: Inputs | None = None
    failed: bool = False


def _in_thread(read: Callable[[], None]) -> None:
    threading.Thread(target=read, name="ll-full-read", daemon=True).start()


class Views:
    """Views per channel, shared by the requests of one process (the demo server's threads, a warm Lambda):
    concurrent held requests of a channel share one poll instead of each querying the store.

    A look (the newest parts: one query) holds the channel's lock; a full read of the channel's state
    (channel record, PUB, runs, SEG# windows, ad breaks: several round trips, up to a second under load) does
    not: it runs through `read_later` (a thread by default) while the looks go on with the old inputs, and
    the look after it ended lays the view out from its result. A part published meanwhile is listed at the
    next look, as always. Only the first read of a channel (nothing to show yet) is done in the request."""

    def __init__(self, read_later: Callable[[Callable[[], None]], None] = _in_thread) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._views: dict[str, View] = {}
        self._runs: dict[str, tuple[float, dict[int, Any]]] = {}
        self._reads: dict[str, _Read] = {}
        self._read_later = read_later

    def get(self, channel: str, deps: Deps, max_age: float, clock: Callable[[], float] = time.monotonic,
            slack: float = 0.0) -> View | None:
        """The channel's view, looked at again when older than half `max_age`. `slack`: seconds in which
        the caller expects no new part (View.quiet): with enough of it, a due full read (REFRESH) is started
        now and the SEG# of a complete segment looked for now, so the look when the part is due is one query."""
        with self._lock:
            lock = self._locks.setdefault(channel, threading.Lock())
        idle = slack >= SLACK
        with lock:
            now = clock()
            fresh = self._keep(channel, self._get(channel, deps, max_age, now, idle))
            read = self._start_read(channel, deps, fresh, now, idle)
        if read is None:
            return fresh
        self._read_later(read)
        job = self._reads.get(channel)
        if job is None or not job.finished:
            return fresh
        with lock:  # read at once (`read_later` ran it): laid out now
            return self._keep(channel, self._get(channel, deps, max_age, clock(), idle))

    def _keep(self, channel: str, view: View | None) -> View | None:
        if view is None:
            self._views.pop(channel, None)
        else:
            self._views[channel] = view
        return view

    def forget(self) -> None:
        with self._lock:
            self._views.clear()
            self._runs.clear()
            self._reads.clear()

    def _get(self, channel: str, deps: Deps, max_age: float, now: float, idle: bool) -> View | None:
        view = self._views.get(channel)
        if view is None or view.inputs is None:
            self._reads.pop(channel, None)
            return build_view(channel, deps, self._runs, now)  # nothing to show yet: read it all now
        inputs = view.inputs
        read = self._reads.get(channel)
        if read is not None and read.finished:
            del self._reads[channel]
            if read.inputs is None and not read.failed:
                return None  # the channel is gone, or no longer low-latency
            if read.inputs is not None:
                inputs = _merged(read.inputs, view.inputs)
        # Half the age: a request that slept one poll always looks again; concurrent ones share the look.
        if inputs is view.inputs and now - view.checked < max_age / 2 and not (idle and view.complete is not None):
            return view
        return self._look(channel, deps, view, inputs, now)

    def _start_read(self, channel: str, deps: Deps, view: View | None, now: float, idle: bool
                    ) -> Callable[[], None] | None:
        """A full read to run off the looks' path, when one is due and none is going on."""
        if view is None or view.inputs is None or not _full_due(view, now, idle):
            return None
        going = self._reads.get(channel)
        if going is not None and (going.finished or now - going.started < ABANDON):
            return None  # one at a time (a finished one is used by the next look)
        job = self._reads[channel] = _Read(now)

        def read() -> None:
            try:
                job.inputs = read_inputs(channel, deps, self._runs, job.started)
            except Exception:  # the looks go on with the old inputs; the next look asks for a read again
                logger.exception("LL origin: full read failed")
                job.failed = True
            finally:
                job.finished = True

        return read

    def _look(self, channel: str, deps: Deps, old: View, inputs: Inputs, now: float) -> View:
        """Look at the newest parts (one query) and lay the view out again when they or the inputs changed.
        A complete segment's SEG# is looked for on each look until it is there and is added to the inputs
        as it is: the next segment's parts are listed from that look on, without a full read."""
        if old.complete is not None and inputs.current == old.current:
            item = deps.store.chunk(channel, old.current, old.complete)
            if item is not None:  # the worker wrote it: a new resume point
                inputs = with_segment(inputs, chunk_state(item))
        # A full read's inputs (a restart, a resume point further back) ask for the whole range again.
        items = part_items(channel, deps, inputs, old if inputs.fetched == old.fetched else None)
        if inputs is old.inputs and _parts_key(items) == old.parts_key:
            return replace(old, checked=now)
        return layout(inputs, items, deps.now(), now)


def _merged(new: Inputs, old: Inputs) -> Inputs:
    """A full read's inputs plus the segments the looks took from their SEG# items since it started (it may
    have read the store before they were written): a view never takes back a segment it listed."""
    if new.current != old.current:
        return new  # a restart: the old run's segments are the new inputs' business
    have = new.chunks.get(new.current, {})
    start = new.resume[0] or 0
    for seq, chunk in sorted(old.chunks.get(old.current, {}).items()):
        if seq >= start and seq not in have:
            new = with_segment(new, chunk)
    return new


def _full_due(view: View, now: float, idle: bool) -> bool:
    """Is a full read of the channel's state due: REFRESH after the last one when no part is expected
    (`idle`), REFRESH + LATE_REFRESH after it whatever is expected."""
    age = now - view.fetched
    return age >= REFRESH + LATE_REFRESH or (idle and age >= REFRESH)


def _chores(view: View, now: float) -> bool:
    """Has a view something to do while no part is expected: a due full read to start, or the SEG# of a
    complete segment (so that the look when the next part is due is one query, as for any other part)."""
    return now - view.fetched >= REFRESH or view.complete is not None


def _parts_key(items: Mapping[tuple[int, int], Mapping[str, Any]]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v.get("fill", "")), len(v.get("done") or ()), bool(v.get("slate_written")))
                        for k, v in items.items()))


VIEWS = Views()


@dataclass(frozen=True)
class Inputs:
    """What a view is laid out from besides the newest parts: read again when a segment completes or every
    REFRESH seconds (the channel record for a stop, PUB for a new segment, ad breaks)."""

    meta: ChannelRecord
    ladder: Ladder
    spec: PartSpec
    shape: Any  # assemble.ChannelShape
    runs: Mapping[int, Any]  # RunInfo by run
    trimmed: PublishState
    chunks: Mapping[int, Mapping[int, ChunkState]]
    breaks: tuple[Any, ...]
    target: int
    current: int
    resume: tuple[int | None, tuple[int, int] | None]
    fetched: float


def read_inputs(channel: str, deps: Deps, runs_cache: dict[str, tuple[float, dict[int, Any]]] | None = None,
                now_mono: float | None = None) -> Inputs | None:
    """Read the channel's state from the store (None: unknown or not a low-latency channel)."""
    store = deps.store
    meta = store.channel(channel)
    if meta is None:
        return None
    ladder = deps.ladder(meta)
    spec = channel_spec(meta, ladder, deps.settings.segment_duration)
    if spec is None:
        return None
    mono = time.monotonic() if now_mono is None else now_mono
    prev = publish_state(store.pub(channel))
    current = meta.current_run
    cached = (runs_cache or {}).get(channel)
    if cached is None or current not in cached[1] or not cached[1][current].slate_ready or mono - cached[0] > 30:
        runs = store.runs(channel)
        if runs_cache is not None:
            runs_cache[channel] = (mono, runs)
    else:
        runs = cached[1]
    from . import publish

    shape = publish._shape(channel, meta, ladder, deps, set(runs) | {r.run for r in prev.runs})
    target = prev.target or assemble.fixed_target(shape)
    keep_seconds = shape.live_window + HOLD_TARGETS * target + 2 * shape.segment_duration
    keep, chunks = _window_chunks(channel, deps, prev, current, math.ceil(keep_seconds / shape.segment_duration))
    trimmed = _trimmed(prev, keep)
    from .parts import _resume_point

    resume = _resume_point(trimmed.run(current), chunks.setdefault(current, {}))
    try:
        breaks = tuple(deps.ad_breaks(store.ad_break_items(channel)))
    except ImportError:
        breaks = ()
    return Inputs(meta, ladder, spec, shape, runs, trimmed, chunks, breaks, target, current, resume, mono)


def with_segment(inputs: Inputs, chunk: ChunkState) -> Inputs:
    """`inputs` plus the SEG# item of a segment of the current run written since they were read: the
    segment is listed as the packager will publish it (the planner lays out chunks after PUB's last as
    the packager does) and the parts after it become listable, without reading everything else again."""
    chunks = {r: dict(c) for r, c in inputs.chunks.items()}
    run_chunks = chunks.setdefault(inputs.current, {})
    run_chunks[chunk.seq] = chunk
    from .parts import _resume_point

    return replace(inputs, chunks=chunks, resume=_resume_point(inputs.trimmed.run(inputs.current), run_chunks))


def part_items(channel: str, deps: Deps, inputs: Inputs, known: View | None = None
               ) -> Mapping[tuple[int, int], Mapping[str, Any]]:
    """The PRT# items from a little before the first segment not yet written in full (one small query).
    With `known`, a view of the same run whose resume point is not after this one's: the parts of the
    segments written in full do not change any more, so only those from the first segment not yet written
    are asked for, the rest are taken from it (a look returns the 1-5 items that can change, not ~15)."""
    start_seq, _ = inputs.resume
    lo = max(0, (start_seq or 0) - 3)
    ps = part_store(deps)
    if known is None or start_seq is None or known.inputs is None or known.current != inputs.current \
            or known.resume[0] is None or known.resume[0] > start_seq or max(0, known.resume[0] - 3) > lo:
        return ps.parts(channel, inputs.current, (lo, 0))
    items: dict[tuple[int, int], Mapping[str, Any]] = {k: v for k, v in known.items.items() if lo <= k[0] < start_seq}
    items.update(ps.parts(channel, inputs.current, (start_seq, 0)))
    return items


def layout(inputs: Inputs, items: Mapping[tuple[int, int], Mapping[str, Any]], now: datetime, mono: float) -> View:
    """The LL view of `inputs` with these parts: the packager's planner over the newest segments plus the
    segment being written as a provisional chunk, so its PDT, Period and markers are what it will get."""
    meta, ladder, spec, shape, current = inputs.meta, inputs.ladder, inputs.spec, inputs.shape, inputs.current
    chunks = {r: dict(c) for r, c in inputs.chunks.items()}
    run_chunks = chunks.setdefault(current, {})
    start_seq, prev_end = inputs.resume
    states = {k: part_state(v) for k, v in items.items()}
    renditions = frozenset(ladder.names)
    listed = listed_parts(spec, states, renditions, start_seq, prev_end, now)
    partial = [p for p in listed if p.seq == listed[0].seq] if listed else []
    if partial and current in inputs.runs and partial[0].seq not in run_chunks:
        first = partial[0]
        assert first.v_start is not None and first.a_start is not None
        v_dur = spec.segment_frames * ladder.frame_ticks
        a_dur = max(1, round(grid.samples(v_dur, ladder.audio.sample_rate) / grid.AAC_FRAME)) * grid.AAC_FRAME
        run_chunks[first.seq] = ChunkState(
            seq=first.seq, status=assemble.RECEIVED, received_at=first.received_at, v_start=first.v_start, v_dur=v_dur,
            a_start=first.a_start, a_dur=a_dur, done=renditions, done_at=first.ready_at, fill=MEDIA,
            claimed_at=first.ready_at, run=current, codecs=dict(first.codecs))
    p = assemble.plan(shape, inputs.runs, chunks, inputs.trimmed, now, inputs.breaks,
                      current=current if current in inputs.runs else None)
    tl: Timeline | None = p.timeline if p.timeline.segments else None
    provisional = bool(partial) and tl is not None and \
        (tl.segments[-1].run, tl.segments[-1].seq) == (run_name(current), partial[0].seq)
    if tl is not None and meta.state not in INGEST_STATES and not tl.ended:
        tl = replace(tl, ended=True)  # stopped: see the module docstring
    entries = _entries(tl, states, renditions, shape.gap_mode, ladder, current)
    if provisional and tl is not None:
        last = tl.segments[-1]
        entries[(last.run, last.seq)] = tuple(_entry(x, ladder, shape.gap_mode) for x in partial)
    ll = hls.LowLatency(spec.part_target, spec.part_hold_back, entries, spec.count, partial=provisional)
    edge = hls.ll_edge(tl, ll) if tl is not None else Edge(None, None, None, spec.count)
    ready = [x.ready_at for x in states.values() if x.filled(renditions)]
    # Written in full any moment now: look for its SEG# until it is there.
    complete = partial[0].seq if len(partial) == spec.count else None
    return View(meta, ladder, spec, tl, ll, edge, inputs.target, _parts_key(items), inputs.fetched, mono, current,
                inputs.resume, states, max(ready) if ready else None, inputs, complete, items)


def build_view(channel: str, deps: Deps, runs_cache: dict[str, tuple[float, dict[int, Any]]] | None = None,
               now_mono: float | None = None) -> View | None:
    """Read the channel's state and lay out its LL playlists (None: unknown or not a low-latency channel)."""
    inputs = read_inputs(channel, deps, runs_cache, now_mono)
    if inputs is None:
        return None
    return layout(inputs, part_items(channel, deps, inputs), deps.now(), inputs.fetched)


def _entry(p: PartState, ladder: Ladder, gap_mode: bool) -> hls.PartEntry:
    assert p.v_dur is not None and p.a_dur is not None
    return hls.PartEntry(p.index, p.v_dur / grid.TICKS, p.a_dur / ladder.audio.sample_rate,
                         gap=gap_mode and p.fill == "slate")


def _entries(tl: Timeline | None, states: Mapping[tuple[int, int], PartState], renditions: frozenset[str],
             gap_mode: bool, ladder: Ladder, current: int) -> dict[tuple[str, int], tuple[hls.PartEntry, ...]]:
    """The parts of the listed segments that were made from parts: each segment's leading filled parts,
    when they are exactly that segment (a segment slated whole, or uploaded as one chunk, has none)."""
    out: dict[tuple[str, int], tuple[hls.PartEntry, ...]] = {}
    if tl is None:
        return out
    name = run_name(current)
    for s in tl.segments[-8:]:
        if s.run != name or s.slate:  # a slot slated whole was not made of its parts
            continue
        own: list[PartState] = []
        i = 0
        while (p := states.get((s.seq, i))) is not None and p.filled(renditions):
            own.append(p)
            i += 1
        if own and own[0].v_start == s.v_start and sum(p.v_dur or 0 for p in own) == s.v_dur:
            out[(s.run, s.seq)] = tuple(_entry(p, ladder, gap_mode) for p in own)
    return out


def _window_chunks(channel: str, deps: Deps, prev: PublishState, current: int, segments: int
                   ) -> tuple[dict[int, int], dict[int, dict[int, ChunkState]]]:
    """SEG# facts of the newest `segments` listed segments (newest run first), and the tail after them."""
    keep: dict[int, int] = {}
    chunks: dict[int, dict[int, ChunkState]] = {}
    left = segments
    states = sorted(prev.runs, key=lambda r: r.run, reverse=True)
    if current not in {r.run for r in prev.runs}:
        chunks[current] = deps.store.chunks(channel, current, 0)
    for r in states:
        if left <= 0:
            keep[r.run] = r.last_seq + 1  # nothing of it is needed
            continue
        lo = max(r.first_seq, r.last_seq - left + 1)
        keep[r.run] = lo
        chunks[r.run] = deps.store.chunks(channel, r.run, lo)
        left -= max(0, r.last_seq - lo + 1)
    return keep, chunks


# --------------------------------------------------------------------------- requests


def handle(req: Request, deps: Deps, *, views: Views = VIEWS, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> Response:
    """One origin request: route, validate, hold if asked to, render. Never raises for bad input."""
    started = clock()
    try:
        resp = _route(req, deps, views, sleep, clock)
    except ValidationError as e:
        resp = _error(400, str(e), "no-store")
    except Exception as e:  # the store or S3 failed: a short-lived 503, the player retries
        logger.exception("LL origin failed")
        resp = _error(503, f"the origin could not answer ({type(e).__name__}: {str(e)[:200]})", "max-age=1")
    held = round((clock() - started) * 1000)
    resp.headers["CMSD-Static"] = f"ht={held}"  # CTA-5006 held time: how long the origin blocked
    resp.headers.setdefault("Access-Control-Allow-Origin", "*")
    return resp


def _route(req: Request, deps: Deps, views: Views, sleep: Callable[[float], None], clock: Callable[[], float]
           ) -> Response:
    if req.method not in ("GET", "HEAD"):
        return _error(405, f"{req.method} is not allowed here; use GET")
    parts = req.path.strip("/").split("/")
    if not parts or not ID_RE.fullmatch(parts[0]):
        return _error(404, f"no such low-latency resource: {req.path[:120]}")
    channel = parts[0]
    if parts[1:] == ["ll.m3u8"]:
        return _master(channel, deps, views, clock)
    if len(parts) == 3 and parts[2] == "ll.m3u8":
        return _media(channel, parts[1], parse_directives(req.query), deps, views, sleep, clock)
    if len(parts) == 4 and _NAME_RE.match(parts[1]) and _RUN_RE.match(parts[2]) and _PART_RE.match(parts[3]):
        return _part(channel, parts[1], parts[2], parts[3], deps, views, sleep, clock, head=req.method == "HEAD")
    return _error(404, f"no such low-latency resource: {req.path[:120]} (LL paths: {{channel}}/ll.m3u8, "
                       "{channel}/{rendition}/ll.m3u8, {channel}/{rendition}/{run}/{seq:08d}.{part}.m4s)")


def _view(channel: str, deps: Deps, views: Views, clock: Callable[[], float], max_age: float = POLL,
          slack: float = 0.0) -> View | Response:
    view = views.get(channel, deps, max_age, clock, slack)
    if view is None:
        if deps.store.channel(channel) is None:
            return _error(404, f"channel {channel!r} not found", "max-age=1")
        return _error(404, f"channel {channel!r} has no low-latency playlists (create it with low_latency: "
                           "{\"part_duration\": 0.5})", "max-age=1")
    return view


def _master(channel: str, deps: Deps, views: Views, clock: Callable[[], float]) -> Response:
    view = _view(channel, deps, views, clock)
    if isinstance(view, Response):
        return view
    if view.timeline is None:
        return _error(404, f"channel {channel!r}: nothing published yet", "max-age=1")
    cache = f"public, max-age={max(1, round(view.spec.segment_duration / 2))}"
    return Response(200, {"Content-Type": PLAYLIST, "Cache-Control": cache},
                    hls.render_ll_master(view.timeline).encode())


def _media(channel: str, rendition: str, d: Directives, deps: Deps, views: Views,
           sleep: Callable[[float], None], clock: Callable[[], float]) -> Response:
    started = clock()
    view = _view(channel, deps, views, clock)
    if isinstance(view, Response):
        return view
    if rendition not in view.ladder.names:
        return _error(404, f"unknown rendition {rendition!r}; the ladder has {list(view.ladder.names)}")
    view.edge.check(d)
    deadline = started + HOLD_TARGETS * view.target
    waited = False
    while d.blocking and not view.final and not view.edge.has(d.msn or 0, d.part):
        left = deadline - clock()
        if left <= 0:
            metrics.add_metric(name="LowLatencyHoldTimeouts", unit=MetricUnit.Count, value=1)
            return _error(503, f"segment {d.msn}" + (f" part {d.part}" if d.part is not None else "") +
                          f" did not appear within {HOLD_TARGETS} target durations ({HOLD_TARGETS * view.target} s)",
                          "max-age=1")
        got = _wait(channel, deps, views, sleep, clock, view, deadline,
                    lambda v: v.final or v.edge.has(d.msn or 0, d.part))
        waited = True
        if isinstance(got, Response):
            return got
        view = got
        view.edge.check(d)
    if view.timeline is None:
        return _error(404, f"channel {channel!r}: nothing published yet", "max-age=1")
    text = hls.render_ll(view.timeline, rendition, view.ll, d.skip)
    if view.final:
        cache = "no-store"
    elif d.blocking:
        # RFC 8216bis Appendix B: a blocking response is the playlist as of that part, valid for every
        # client asking for it: cacheable for six target durations (its URL names the part).
        cache = f"public, max-age={6 * view.target}"
    else:
        cache = "public, max-age=1"  # half a part target, rounded up to what CloudFront can count
    if waited:
        metrics.add_metric(name="LowLatencyHeldRequests", unit=MetricUnit.Count, value=1)
    return Response(200, {"Content-Type": PLAYLIST, "Cache-Control": cache}, text.encode())


def _part(channel: str, rendition: str, run: str, name: str, deps: Deps, views: Views,
          sleep: Callable[[float], None], clock: Callable[[], float], head: bool = False) -> Response:
    """A part's bytes; the hinted next part is waited for (bounded), anything else missing is a 404."""
    started = clock()
    m = _PART_RE.match(name)
    assert m is not None
    seq, index = int(m["seq"]), int(m["part"])
    key = f"{channel}/{rendition}/{run}/{name}"
    bucket = deps.settings.origin_bucket
    data = deps.objects.get(bucket, key)  # published parts (almost every request): straight from S3
    if data is not None:
        return Response(200, _part_headers(key, rendition), b"" if head else data)
    view = _view(channel, deps, views, clock)
    if isinstance(view, Response):
        return view
    if rendition not in view.ladder.names:
        return _error(404, f"unknown rendition {rendition!r}; the ladder has {list(view.ladder.names)}")
    headers = _part_headers(key, rendition, view.ladder.audio.name)
    if not _coming(view, run, seq, index):
        return _error(404, f"part {name} of {rendition}/{run} is not published and is not the next part", "max-age=1")
    deadline = started + HOLD_TARGETS * view.target
    while clock() < deadline:
        got = _wait(channel, deps, views, sleep, clock, view, deadline,
                    lambda v: (seq, index) in v.states and v.states[(seq, index)].filled(frozenset(v.ladder.names)))
        if isinstance(got, Response):
            return got
        view = got
        if (seq, index) in view.states and view.states[(seq, index)].filled(frozenset(view.ladder.names)):
            data = deps.objects.get(bucket, key)
            if data is not None:
                return Response(200, headers, b"" if head else data)
        if view.final or not _coming(view, run, seq, index):
            break
    return _error(404, f"part {name} of {rendition}/{run} was not published in time", "max-age=1")


def _wait(channel: str, deps: Deps, views: Views, sleep: Callable[[float], None], clock: Callable[[], float],
          view: View, deadline: float, done: Callable[[View], bool]) -> View | Response:
    """A held request's next look: sleep until the next part can be due (`_nap`), then look. When nothing is
    expected for a while, the view's chores (a due full read, a complete segment's SEG#) are done first,
    so the look when the part is due is a single query."""
    quiet = view.quiet(deps.now())
    if quiet >= SLACK and _chores(view, clock()):
        got = _view(channel, deps, views, clock, slack=quiet)
        if isinstance(got, Response) or done(got):
            return got
        view = got
        quiet = view.quiet(deps.now())
    sleep(_nap(clock(), deadline - clock(), quiet))
    return _view(channel, deps, views, clock)


def _nap(now: float, left: float, quiet: float) -> float:
    """How long a held request sleeps: until the next part can be due, then one POLL at a time, waking on a
    shared POLL grid so that the held requests of a process look at the store together (one query)."""
    wake = math.ceil((now + max(POLL, quiet)) / POLL) * POLL
    return max(0.001, min(left, wake - now))


def _part_headers(key: str, rendition: str, audio: str = "audio") -> dict[str, str]:
    return {"Content-Type": content_type(key, rendition, audio), "Cache-Control": IMMUTABLE}


def _coming(view: View, run: str, seq: int, index: int) -> bool:
    """Is (seq, index) of `run` at most two parts after the last listed part of the current run?"""
    if view.final or run != run_name(view.current):
        return False
    e = view.edge
    k = view.spec.count
    if e.part_msn is not None and e.part_index is not None and view.timeline is not None:
        last = view.timeline.segments[-1]
        base = last.seq - (last.number - e.part_msn)
        pos, at = seq * k + index, base * k + e.part_index
    elif view.timeline is not None:
        last = view.timeline.segments[-1]
        pos, at = seq * k + index, last.seq * k + k - 1
    else:
        return index == 0 or (seq, index - 1) in view.states
    return at < pos <= at + 2


# --------------------------------------------------------------------------- Lambda function URL


def on_function_url(event: Mapping[str, Any], deps: Deps | None = None) -> dict[str, Any]:
    """A Lambda function URL (payload 2.0) request -> its response (binary bodies base64)."""
    from . import deps as deps_mod

    http = (event.get("requestContext") or {}).get("http") or {}
    req = Request.of(str(event.get("rawPath") or http.get("path") or "/"), str(event.get("rawQueryString") or ""),
                     str(http.get("method") or "GET"))
    resp = handle(req, deps or deps_mod.default())
    text = resp.headers.get("Content-Type", "").startswith(("application/vnd.apple", "application/json"))
    return {"statusCode": resp.status, "headers": resp.headers,
            "body": resp.text if text else base64.b64encode(resp.body).decode(), "isBase64Encoded": not text}


def is_ll_path(path: str) -> bool:
    """Is this origin path one the LL origin serves (the demo server's routing; CloudFront's path patterns
    `*/ll.m3u8` and `*.?.m4s` say the same)?"""
    rest = path.strip("/").split("/")
    return (len(rest) in (2, 3) and rest[-1] == "ll.m3u8") or (len(rest) == 4 and bool(_PART_RE.match(rest[-1])))


__all__ = ["VIEWS", "Request", "Response", "View", "Views", "build_view", "handle", "is_ll_path", "on_function_url"]

