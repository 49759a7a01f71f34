"""Build the channel Timeline from stored chunk state: which slots are published, as media or as slate,
and where the Periods are. Pure: no boto3, no clock reads (`now` is an argument).

Rules (issues #15 and #10):
- Every slot (run, seq) is published exactly once, in order: as media (its chunk is transcoded in every
  rendition), or as slate. A slot never waits for its own chunk once a *later* chunk has been ready
  for `slate_wait` (default one segment duration): it is slated, so the playlists advance within
  1.5 x TARGETDURATION whatever one chunk does (RFC 8216bis 6.2.1). A chunk never received at all
  waits only until it is 2 x `slate_wait` overdue (a segment after its predecessor arrived), slated
  the moment a later chunk is ready past that. A corrupt chunk is slated at once.
- Input loss (MediaLive's input-loss behaviour): a slot whose chunk never came is slated even with no
  later chunk ready once it is `input_loss_wait` (default 1.5 segments, clock.input_loss_wait) past when it was
  due: when the encoder would have delivered it, on the run's media clock anchored to wall clock (the
  later of: the nearest real chunk's arrival plus the media since, and availabilityStartTime plus the
  slot's end). Without it the live edge froze until a later chunk was transcoded, and DASH engines,
  which play close to the edge, stalled (soak: dash.js and shaka 2.1-2.3 s at a missing chunk after an
  out-of-order pair). Only never-received slots: a chunk that is in (even untranscoded, even still
  being probed by ingest: `seen`) keeps the rules above, and so, for a while (`held`), does one whose
  upload the packager found in the ingest bucket before claiming the slot (its event not at ingest
  yet). Bounded: at most INPUT_LOSS_SEGMENTS segments past the encoder's last real chunk (the
  watchdog's input-gap time); an encoder that really stopped leaves the edge where that ends. Not
  while a run is being sealed (its tail is the stop's).
  Slating takes a claim on the slot (SEG#.fill = "slate", conditional); a chunk whose transcode
  finishes after that is dropped and counted, never published at the slot's URL.
- A run's first published slot is a real chunk (there is no clock to place slate on before one); chunks
  for lower seqs that arrive later are late.
- Segments tile the grid: a slate starts where the previous segment ends (video and audio), and lasts
  what its chunk would have (its probed span when it arrived, else up to the next known chunk, else
  one nominal segment). Where media is not contiguous (a new run, an encoder clock step), a new
  Period starts: HLS EXT-X-DISCONTINUITY, DASH Period. Its id, start and PTO are stored and never
  change; its PDT anchor is where the previous Period ended (or, after an outage, the wall clock),
  so PDT never goes back.
- Between runs, the time the channel was off air is bridged with slate (at most 3 segments of it)
  in the sealed run, right after its last segment, listed once the next run's first chunk is placed: a
  viewer's buffer gets back what the stop took from it, and the next run's PDT continues.
- The DVR window keeps the newest `dvr_window` seconds of listed media, across runs.
- Sealing a run (stop) publishes what arrives within a bounded wait, slates the holes up to the last
  received chunk, then nothing more: a straggler is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction

from ..media import grid
from ..media.ladder import Ladder
from ..media.timeline import AdBreak, AdMarkers, IFrames, Period, Placement, Segment, Timeline, round_half_up

RECEIVED, INVALID = "received", "invalid"
MEDIA, SLATE = "media", "slate"
# Beyond this many seqs past the last published one, a chunk is ignored (ingest already rejects it):
# protects the loop below from a hostile seq like 999999999999.
MAX_SPAN = 100_000
# A media claim older than this without the renditions done means the worker died between claiming and
# uploading: the packager may take the slot over for slate (every segment write is write-once).
STALE_CLAIM = timedelta(seconds=30)
# A run's first slot waits this many slate waits for its chunk: the run's first transcodes start cold.
FIRST_SLOT_FACTOR = 3
# The slate bridging the off-air time between two runs lasts at most this many segments: what the
# players keep as live delay (DASH suggestedPresentationDelay and hls.js: 3 target durations).
BRIDGE_SEGMENTS = 3
# Input loss slates at most this many segments past the encoder's last real chunk: the time the watchdog
# takes to call it an input gap (control.asl: 3 missed 2 s segments). Slating on would drop every chunk of
# an encoder that resumes with the next seq but a later clock, for as long as the outage lasted.
INPUT_LOSS_SEGMENTS = 3


@dataclass(frozen=True)
class ChunkState:
    """One SEG# item, as the packager needs it."""

    seq: int
    status: str  # RECEIVED | INVALID
    received_at: datetime
    # Placement on the run's grids (ingest's from the probe; the worker's actual ones once done).
    v_start: int | None = None  # 90 kHz ticks
    v_dur: int | None = None
    a_start: int | None = None  # samples
    a_dur: int | None = None
    done: frozenset[str] = frozenset()  # renditions whose output exists in the origin
    done_at: datetime | None = None  # when the last rendition finished
    fill: str = ""  # "" | MEDIA | SLATE: who owns the slot's URL
    claimed_at: datetime | None = None
    late: bool = False  # already counted as late (arrived or finished after its slot was published)
    iframes: Mapping[str, IFrames] = field(default_factory=dict, compare=False)
    codecs: Mapping[str, str] = field(default_factory=dict, compare=False)
    run: int = 0
    ext: str = field(default="", compare=False)  # the upload's container ("ts" | "mp4"; "" for a slate claim)

    @property
    def media_start(self) -> float | None:
        return None if self.v_start is None else self.v_start / grid.TICKS

    @property
    def duration(self) -> float | None:
        return None if self.v_dur is None else self.v_dur / grid.TICKS


@dataclass(frozen=True)
class RunInfo:
    """RUN# facts (written by ingest when the run's first chunk fixed its clock)."""

    run: int
    availability_start: datetime  # PDT of the run's media time 0
    audio_phase: int = 0  # samples: where the run's copied AAC frames sit against 1024 (0 re-encoded)
    slate_ready: bool = False
    started_at: datetime | None = None  # when its first chunk arrived


@dataclass(frozen=True)
class PeriodState:
    id: str
    run: int
    first_seq: int
    start: float  # seconds since the channel's availabilityStartTime
    v0: int  # ticks
    a0: int  # samples
    pdt0: datetime
    disc: bool = True  # its first segment carries EXT-X-DISCONTINUITY (all but the channel's first Period)

    def period(self, run_name: str) -> Period:
        return Period(self.id, self.start, run_name, self.v0, self.a0)


@dataclass(frozen=True)
class RunState:
    run: int
    msn_base: int  # msn = msn_base + seq
    first_seq: int  # first seq still kept (the run's first published seq until the DVR window trims it)
    last_seq: int  # last published seq
    sealed: bool = False
    slates: frozenset[int] = frozenset()  # slated seqs still kept


@dataclass(frozen=True)
class PublishState:
    """The PUB item fields the assembly needs (what earlier versions already promised players)."""

    ast: datetime | None = None  # the channel's availabilityStartTime (first run's media time 0)
    target: int = 0  # EXT-X-TARGETDURATION, fixed at the first publish
    runs: tuple[RunState, ...] = ()
    periods: tuple[PeriodState, ...] = ()
    disc_before: int = 0  # EXT-X-DISCONTINUITY tags that left the window
    placements: Mapping[str, Placement] = field(default_factory=dict)
    ended: bool = False  # the event ended: ENDLIST on the live playlists, nothing more is added
    periods_total: int = 0  # Periods ever published (the first one has no DISCONTINUITY)

    def run(self, run: int) -> RunState | None:
        return next((r for r in self.runs if r.run == run), None)


@dataclass(frozen=True)
class ChannelShape:
    """Channel settings that shape the timeline."""

    channel_id: str
    ladder: Ladder
    segment_duration: float
    live_window: float = 30.0
    dvr_window: float = 7200.0
    marker_style: str = "both"
    ad_markers: AdMarkers = field(default_factory=AdMarkers)
    slate_wait: float | None = None  # seconds a later ready chunk waits for a missing one (None: one segment)
    gap_mode: bool = False  # slate is marked EXT-X-GAP in HLS
    # Seconds past its due time a never-received slot waits before it is slated with no later chunk ready
    # (input loss); None: never (a later chunk must be ready first).
    input_loss_wait: float | None = None
    run_names: Mapping[int, str] = field(default_factory=dict)

    def name(self, run: int) -> str:
        return self.run_names.get(run) or f"r{run}"


@dataclass(frozen=True)
class SlotClaim:
    """A slot the packager must claim for slate (SEG#.fill = slate) before it can be published."""

    run: int
    seq: int
    v_start: int
    v_dur: int
    a_start: int
    a_dur: int
    reason: str  # "missing" | "late" | "invalid" | "stopped" | "between runs" | "input loss"


@dataclass(frozen=True)
class Plan:
    timeline: Timeline
    state: PublishState  # the PUB fields after publishing this timeline
    claims: tuple[SlotClaim, ...] = ()  # slate claims to take before publishing further
    newly_published: tuple[ChunkState, ...] = ()  # real segments listed for the first time
    new_slates: tuple[tuple[int, int], ...] = ()  # (run, seq) published as slate for the first time
    recheck_at: datetime | None = None  # when a waiting slot turns into slate (schedule a re-run)
    changed: bool = True
    late: tuple[tuple[int, int], ...] = ()  # chunks that came for a slot already published


def slate_wait(shape: ChannelShape) -> timedelta:
    return timedelta(seconds=shape.slate_wait if shape.slate_wait is not None else shape.segment_duration)


def fixed_target(shape: ChannelShape) -> int:
    return max(1, round_half_up(shape.segment_duration))


def _ready(c: ChunkState, renditions: frozenset[str]) -> bool:
    return (c.status == RECEIVED and c.v_start is not None and c.fill != SLATE and renditions <= c.done
            and c.a_start is not None)


def plan(
    shape: ChannelShape,
    runs: Mapping[int, RunInfo],
    chunks: Mapping[int, Mapping[int, ChunkState]],
    pub: PublishState,
    now: datetime,
    ad_breaks: Sequence[AdBreak] = (),
    *,
    current: int | None = None,
    seal: Iterable[int] = (),
    seal_grace: float = 6.0,
    stop_at: Mapping[int, datetime] | None = None,
    end_event: bool = False,
    seen: Mapping[int, Collection[int]] | None = None,
    held: Mapping[int, Mapping[int, datetime]] | None = None,
) -> Plan:
    """The timeline to publish now.

    `current`: the channel's current run (it may not have published anything yet). `seal`: runs being
    stopped: their tail waits `seal_grace` seconds after `stop_at[run]`, then holes are slated and the
    run is sealed. `end_event`: the channel is deleted: ENDLIST on the live playlists, for good.
    `seen`: per run, seqs whose upload reached ingest but may not be recorded yet (being probed): the
    encoder did deliver them, so input loss never takes their slots. `held`: per run, seq -> until when
    input loss leaves the slot alone: its object is in the ingest bucket but ingest has not noted it yet
    (the packager looked before claiming it; ingest is on its way).
    """
    renditions = frozenset(shape.ladder.names)
    fps = shape.ladder.frame_rate
    rate = shape.ladder.audio.sample_rate
    frame = shape.ladder.frame_ticks
    nominal = grid.nominal_frames(shape.segment_duration, fps)
    target = pub.target or fixed_target(shape)
    # A slate's EXTINF must round to at most TARGETDURATION: strictly under target + 0.5 s.
    limit = Fraction(target) + Fraction(1, 2)
    max_frames = max(1, min(int(limit * fps) - (1 if (limit * fps).denominator == 1 else 0), 2 * nominal))
    wait = slate_wait(shape)
    seal_set = set(seal)
    stop_at = stop_at or {}
    states = {r.run: r for r in pub.runs}
    order = sorted(set(states) | ({current} if current is not None and current in runs else set()))
    claims: list[SlotClaim] = []
    fresh: list[ChunkState] = []
    new_slates: list[tuple[int, int]] = []
    late: list[tuple[int, int]] = []
    recheck: list[datetime] = []
    periods = list(pub.periods)
    periods_total = pub.periods_total
    ast = pub.ast
    prev_msn = -1
    listing: list[tuple[int, ChunkState, bool]] = []  # (run, chunk facts, slate) in publish order
    out_runs: list[RunState] = []
    for rn in order:
        info = runs.get(rn)
        st = states.get(rn)
        run_chunks = chunks.get(rn, {})
        if st is None:
            if info is None or pub.ended:
                continue
            first = _first_seq(run_chunks, renditions, now, shape)
            if first is None:
                recheck.extend(_hold_until(run_chunks, shape))
                continue
            # Only after a run sealed by its stop (already published as sealed): what it lists past its
            # last segment then is the bridge alone.
            if out_runs and out_runs[-1].sealed and (was := states.get(out_runs[-1].run)) is not None and was.sealed:
                bridged, waiting = _bridge(out_runs[-1], chunks.get(out_runs[-1].run, {}), periods, info,
                                           run_chunks[first], nominal, max_frames, frame, rate, fps, now,
                                           claims, new_slates, listing)
                out_runs[-1] = bridged
                prev_msn = bridged.msn_base + bridged.last_seq
                if waiting:
                    recheck.append(now + timedelta(seconds=1))
                    continue
            # The channel's first run numbers its segments by their seq; later runs continue the numbering.
            st = RunState(rn, 0 if prev_msn < 0 else prev_msn + 1 - first, first, first - 1)
        if ast is None and info is not None:
            ast = info.availability_start
        # Already published segments of this run (facts from storage; immutable once published).
        for seq in range(st.first_seq, st.last_seq + 1):
            c = run_chunks.get(seq)
            if c is None:
                continue  # trimmed facts that are no longer needed (the window logic below drops them)
            listing.append((rn, c, seq in st.slates))
        last = st.last_seq
        slates = set(st.slates)
        sealed = st.sealed
        if not sealed and not pub.ended and info is not None:
            last, blocked = _extend(
                shape, info, run_chunks, st, renditions, now, wait, nominal, max_frames, frame, rate, fps,
                claims, fresh, new_slates, late, recheck, slates, listing,
                sealing=rn in seal_set, seal_deadline=(stop_at.get(rn) or now) + timedelta(seconds=seal_grace),
                seen=(seen or {}).get(rn, ()), held=(held or {}).get(rn, {}),
            )
            if rn in seal_set and not blocked and _tail_done(run_chunks, last):
                sealed = True
        elif sealed:
            late.extend((rn, s) for s, c in run_chunks.items() if s > last and c.status == RECEIVED and c.done)
        if not sealed and rn != current and rn not in seal_set and current is not None and rn < current:
            sealed = True  # an older run whose stop never finished sealing: nothing more can come for it
        out_runs.append(replace(st, last_seq=last, slates=frozenset(slates), sealed=sealed))
        if last >= st.first_seq or st.last_seq >= st.first_seq:
            prev_msn = out_runs[-1].msn_base + last

    # Lay out the listed segments: periods, PDT, msn.
    segs: list[Segment] = []
    codecs: dict[str, str] = {}
    msn_base = {r.run: r.msn_base for r in out_runs}
    period_by_start = {(p.run, p.first_seq): p for p in periods}
    cur_period: PeriodState | None = None
    prev_end: tuple[int, int, datetime] | None = None  # v_end, a_end, pdt_end of the previous listed segment
    prev_run: int | None = None
    for rn, c, is_slate in listing:
        info = runs.get(rn)
        assert c.v_start is not None and c.v_dur is not None and c.a_start is not None and c.a_dur is not None
        known = period_by_start.get((rn, c.seq))
        starts = known is not None or prev_run != rn or prev_end is None or \
            c.v_start != prev_end[0] or c.a_start != prev_end[1]
        if starts:
            if known is None:
                pdt0 = _anchor(info, c, prev_end, shape, now)
                if ast is None:
                    ast = pdt0
                known = PeriodState(f"{shape.name(rn)}-{c.seq}", rn, c.seq,
                                    round((pdt0 - ast).total_seconds(), 6), c.v_start,
                                    grid.samples(c.v_start, rate), pdt0, disc=periods_total > 0)
                periods_total += 1
                periods.append(known)
                period_by_start[(rn, c.seq)] = known
            cur_period = known
        assert cur_period is not None
        pdt = cur_period.pdt0 + timedelta(microseconds=round((c.v_start - cur_period.v0) * 1_000_000 / grid.TICKS))
        apdt = cur_period.pdt0 + timedelta(
            microseconds=round((Fraction(c.a_start, rate) - Fraction(cur_period.v0, grid.TICKS)) * 1_000_000))
        segs.append(Segment(
            seq=c.seq, start=c.v_start / grid.TICKS, duration=c.v_dur / grid.TICKS, program_date_time=pdt,
            discontinuity=starts and cur_period.disc,
            gap=is_slate and shape.gap_mode, renditions=renditions, run=shape.name(rn),
            msn=msn_base[rn] + c.seq, period=cur_period.id, v_start=c.v_start, v_dur=c.v_dur,
            a_start=c.a_start, a_dur=c.a_dur, slate=is_slate, iframes=c.iframes, audio_pdt=apdt,
        ))
        if not is_slate:
            codecs.update(c.codecs)
        prev_end = (c.v_start + c.v_dur, c.a_start + c.a_dur,
                    pdt + timedelta(microseconds=round(c.v_dur * 1_000_000 / grid.TICKS)))
        prev_run = rn

    if shape.ad_markers.avail_periods:  # a DASH Period per ad avail (issue #11)
        from .admarkers import split_at_breaks

        segs, periods_total = split_at_breaks(shape, segs, periods, periods_total, ad_breaks, pub.placements, ast,
                                              {shape.name(r.run): r.last_seq for r in pub.runs})
    kept, dropped = _window(segs, shape.dvr_window)
    disc_before = pub.disc_before + sum(1 for s in dropped if s.discontinuity)
    kept_periods = {s.period for s in kept}
    first_kept: dict[str, int] = {}
    for s in kept:
        first_kept.setdefault(s.run, s.seq)
    final_runs = []
    for r in out_runs:
        name = shape.name(r.run)
        if name in first_kept:
            f = first_kept[name]
            final_runs.append(replace(r, first_seq=f, slates=frozenset(x for x in r.slates if x >= f)))
        elif r.run == current or r.last_seq < r.first_seq or not r.sealed:
            final_runs.append(r)  # current run, or nothing listed yet: keep its record
    live_periods = tuple(p for p in periods if p.id in kept_periods)
    placements = {k: v for k, v in pub.placements.items() if v.in_seq is None or
                  not kept or v.in_seq > kept[0].number}
    state = PublishState(ast, target, tuple(final_runs), live_periods, disc_before, placements,
                         pub.ended or end_event, periods_total)
    breaks = tuple(replace(b, placement=placements.get(b.id)) for b in ad_breaks)
    timeline = Timeline(
        channel_id=shape.channel_id,
        ladder=shape.ladder,
        segments=tuple(kept),
        ad_breaks=breaks,
        availability_start=ast,
        live_window=shape.live_window,
        dvr_window=shape.dvr_window,
        ended=state.ended,
        marker_style=shape.marker_style,
        ad_markers=shape.ad_markers,
        discontinuities_before=disc_before,
        fixed_target_duration=target,
        periods=tuple(p.period(shape.name(p.run)) for p in live_periods),
        codecs=codecs,
    )
    changed = bool(fresh) or bool(new_slates) or state.ended != pub.ended or \
        [r.sealed for r in final_runs] != [r.sealed for r in pub.runs] or (bool(kept) and not pub.runs)
    return Plan(timeline, state, tuple(claims), tuple(fresh), tuple(new_slates),
                min(recheck) if recheck else None, changed, tuple(late))


def _first_seq(chunks: Mapping[int, ChunkState], renditions: frozenset[str], now: datetime,
               shape: ChannelShape) -> int | None:
    """Where a run starts: its lowest received chunk with a place on the clock (probed: corrupt ones have
    none), at once when it is seq 0, else after a chunk duration (an event for a lower seq may merely be
    late). It need not be transcoded yet: its slot follows the usual rules from there (media, or slate
    at its own place, with a longer wait: a run's first transcodes start cold)."""
    placed = sorted((c for c in chunks.values()
                     if c.fill != SLATE and c.status == RECEIVED and c.v_start is not None and c.a_start is not None),
                    key=lambda c: c.seq)
    if not placed:
        return None
    lowest = placed[0]
    hold = min(c.received_at for c in chunks.values()) + timedelta(seconds=shape.segment_duration)
    return lowest.seq if lowest.seq == 0 or now >= hold else None


def _hold_until(chunks: Mapping[int, ChunkState], shape: ChannelShape) -> list[datetime]:
    if not chunks:
        return []
    return [min(c.received_at for c in chunks.values()) + timedelta(seconds=shape.segment_duration)]


def _tail_done(chunks: Mapping[int, ChunkState], last: int) -> bool:
    """Everything received up to the newest chunk is published."""
    newest = max((s for s, c in chunks.items() if c.fill != SLATE), default=-1)
    return last >= newest


def _extend(shape: ChannelShape, info: RunInfo, chunks: Mapping[int, ChunkState], st: RunState,
            renditions: frozenset[str], now: datetime, wait: timedelta, nominal: int, max_frames: int,
            frame: int, rate: int, fps: Fraction, claims: list[SlotClaim], fresh: list[ChunkState],
            new_slates: list[tuple[int, int]], late: list[tuple[int, int]], recheck: list[datetime],
            slates: set[int], listing: list[tuple[int, ChunkState, bool]], *, sealing: bool,
            seal_deadline: datetime, seen: Collection[int] = (),
            held: Mapping[int, datetime] | None = None) -> tuple[int, bool]:
    """Publish forward from the run's last published seq; returns (new last seq, blocked)."""
    rn = st.run
    last = st.last_seq
    prev = chunks.get(last) if last >= st.first_seq else None
    if prev is None and last >= st.first_seq:
        return last, True  # facts of the last published segment are missing: wait for the store
    newest = max(chunks, default=last)
    ready_at = sorted((s, c.done_at or c.received_at) for s, c in chunks.items() if s > last and _ready(c, renditions))
    late.extend((rn, s) for s, c in chunks.items()
                if s < st.first_seq and c.fill != SLATE and c.status == RECEIVED and not c.late)
    seq = last + 1
    while seq <= min(max(newest, last + 1), last + MAX_SPAN):
        c = chunks.get(seq)
        if c is not None and c.fill == SLATE and c.v_start is not None and c.a_start is not None:
            # Claimed for slate (this round or an earlier one that did not commit): publish it.
            listing.append((rn, c, True))
            slates.add(seq)
            new_slates.append((rn, seq))
            last, prev, seq = seq, c, seq + 1
            continue
        if c is not None and _ready(c, renditions):
            listing.append((rn, c, False))
            fresh.append(c)
            last, prev, seq = seq, c, seq + 1
            continue
        # Not ready: slate it, or wait.
        later = [(s, t) for s, t in ready_at if s > seq]
        reason = ""
        due: datetime | None = None
        lost: datetime | None = None
        if c is None and seq not in seen and prev is not None and not sealing and shape.input_loss_wait is not None:
            lost = _input_loss_due(info, prev, chunks, st.first_seq, nominal * frame,
                                   timedelta(seconds=shape.input_loss_wait))
            if lost is not None and held and seq in held:
                lost = max(lost, held[seq])  # its upload is in the bucket: ingest gets to note it first
        if seq > newest:
            # Nothing at or after this slot has come: only input loss fills it.
            if lost is None:
                return last, False
            if lost > now:
                recheck.append(lost)
                return last, False
            reason = "input loss"
        elif c is not None and c.status == INVALID:
            reason, due = "invalid", now
        elif later:
            first_later = min(t for _, t in later)
            due = first_later + (wait * FIRST_SLOT_FACTOR if prev is None else wait)
            if c is None and prev is not None:
                # Never received at all: it was due a segment after its predecessor arrived. Once it is
                # two waits overdue there is nothing left to wait for as soon as a later chunk is ready:
                # a missing chunk after an encoder pause must not add a whole wait to the hole every
                # viewer rides out (soak: players at 3 target durations stalled 1.5-2.2 s when it did).
                # Not one wait: a chunk one slot out of order arrives just that late, and must play.
                overdue = _arrival(prev, chunks, st.first_seq) + timedelta(seconds=(prev.v_dur or 0) / grid.TICKS) \
                    + 2 * wait
                due = min(due, max(first_later, overdue))
            if due <= now:
                reason = "missing" if c is None else "late"
        if not reason and lost is not None:
            if lost <= now:
                reason = "input loss"
            else:
                due = lost if due is None else min(due, lost)
        if not reason and sealing:
            if now >= seal_deadline and seq <= newest:
                reason = "stopped"
            else:
                recheck.append(seal_deadline)
        if c is not None and c.fill == MEDIA and reason and reason != "invalid":
            # A worker is uploading it right now (it claimed the slot after its transcode): give it the
            # few seconds that takes, unless the claim is stale (the worker died after claiming).
            stale = c.claimed_at is not None and now - c.claimed_at >= STALE_CLAIM
            if not stale:
                recheck.append((c.claimed_at or now) + STALE_CLAIM)
                return last, True
        if not reason:
            if due is not None:
                recheck.append(due)
            return last, True
        if not info.slate_ready:
            # The run's slate is still being rendered (its job was queued with the first chunk): a
            # slot cannot be filled with anything a DASH player can play until it exists.
            recheck.append(now + timedelta(seconds=1))
            return last, True
        claims.append(_slot(rn, seq, prev, c, chunks.get(seq + 1), nominal, max_frames, frame, rate, fps, reason))
        return last, True
    return last, False


def _bridge(prev: RunState, prev_chunks: Mapping[int, ChunkState], periods: Sequence[PeriodState],
            info: RunInfo, first: ChunkState, nominal: int, max_frames: int, frame: int, rate: int, fps: Fraction,
            now: datetime, claims: list[SlotClaim], new_slates: list[tuple[int, int]],
            listing: list[tuple[int, ChunkState, bool]]) -> tuple[RunState, bool]:
    """Slate over the time the channel was off air between a sealed run and the next one's first
    segment, at most BRIDGE_SEGMENTS segments of it, listed once that chunk is placed (the next run's
    segments never come before it; they follow as they are transcoded). While nothing was
    published every viewer's buffer ran down by that time; without the bridge a player resumes the new
    run with what is left (or, having run dry, with its first segment alone) and stalls at the next
    late chunk (soak: hls.js 1.2 s, shaka 3.1 s just after a stop/start). The bridge belongs to the
    sealed run (its URLs and grids, right after its last segment: the same Period), so the new run's
    Period and PDT continue where it ends; a longer outage keeps its hole after the bridge.
    Returns the sealed run's state with the bridge listed as far as it is claimed, and whether the next
    run must wait for the claims returned (it starts once the bridge is listed)."""
    last = prev.last_seq
    pc = prev_chunks.get(last)
    if (last < prev.first_seq or pc is None or pc.v_start is None or pc.v_dur is None or first.v_start is None
            or pc.a_start is None or pc.a_dur is None):
        return prev, False
    home = [p for p in periods if p.run == prev.run and p.first_seq <= last]
    if not home:
        return prev, False
    pd = max(home, key=lambda p: p.first_seq)
    end_v = begin_v = pc.v_start + pc.v_dur
    prev_end = pd.pdt0 + timedelta(microseconds=round((end_v - pd.v0) * 1_000_000 / grid.TICKS))
    starts = info.availability_start + timedelta(microseconds=round(first.v_start * 1_000_000 / grid.TICKS))
    hole = round((starts - prev_end).total_seconds() * grid.TICKS)
    want = min(hole, BRIDGE_SEGMENTS * nominal * frame)
    slates = set(prev.slates)
    tail, seq = pc, last + 1
    while (c := prev_chunks.get(seq)) is not None:
        if c.fill != SLATE or c.v_start != end_v or c.v_dur is None or c.a_start is None or c.a_dur is None:
            # A chunk of its own holds the slot (a straggler): the sealed run ends where it is.
            return replace(prev, last_seq=last, slates=frozenset(slates)), False
        listing.append((prev.run, c, True))
        slates.add(seq)
        new_slates.append((prev.run, seq))
        end_v += c.v_dur
        tail, last, seq = c, seq, seq + 1
    state = replace(prev, last_seq=last, slates=frozenset(slates))
    left = (want - (end_v - begin_v)) // frame
    if left < max(1, nominal // 4):  # nothing (or a sliver not worth a segment) left to bridge
        return state, False
    n = max(1, round(left / nominal))
    while -(-left // n) > max_frames:
        n += 1
    for k in range(n):
        claim = _slot(prev.run, seq, tail, None, None, nominal, max_frames, frame, rate, fps, "between runs",
                      frames=left // n + (1 if k < left % n else 0))
        claims.append(claim)
        tail = ChunkState(seq, RECEIVED, now, claim.v_start, claim.v_dur, claim.a_start, claim.a_dur, fill=SLATE)
        seq += 1
    return state, True


def _input_loss_due(info: RunInfo, prev: ChunkState, chunks: Mapping[int, ChunkState], first_seq: int,
                    nominal_ticks: int, wait: timedelta) -> datetime | None:
    """When the never-received slot after `prev` counts as lost input: `wait` after the encoder would have
    delivered it. That is the later of two readings of the run's media clock against wall clock: the
    nearest real chunk's arrival plus the media from its end to the slot's end (follows an encoder that
    runs late), and availabilityStartTime plus the slot's end (a run whose first chunk came late). None:
    the slot lies INPUT_LOSS_SEGMENTS or more past the last real chunk (the encoder stopped)."""
    if prev.v_start is None or prev.v_dur is None:
        return None
    real: ChunkState | None = None
    for seq in range(prev.seq, first_seq - 1, -1):
        c = chunks.get(seq)
        if c is None or c.v_start is None or c.v_dur is None:
            return None
        if c.fill != SLATE:
            real = c
            break
    if real is None or real.v_start is None or real.v_dur is None:
        return None
    start = prev.v_start + prev.v_dur  # the slot's start: slates tile the grid from prev's end
    real_end = real.v_start + real.v_dur
    if start - real_end >= INPUT_LOSS_SEGMENTS * nominal_ticks:
        return None
    end = start + nominal_ticks
    by_arrival = real.received_at + timedelta(microseconds=round((end - real_end) * 1_000_000 / grid.TICKS))
    by_clock = info.availability_start + timedelta(microseconds=round(end * 1_000_000 / grid.TICKS))
    return max(by_arrival, by_clock) + wait


def _arrival(prev: ChunkState, chunks: Mapping[int, ChunkState], first_seq: int) -> datetime:
    """When `prev`'s chunk arrived, or for a slate, would have: a slate has no arrival of its own (its
    received_at is when it was claimed, or when a late or invalid chunk came), so it is measured from
    the nearest real chunk before it, plus the media between that chunk's end and the slate's end
    (slates tile the grid from there)."""
    if prev.fill != SLATE:
        return prev.received_at
    for seq in range(prev.seq - 1, first_seq - 1, -1):
        c = chunks.get(seq)
        if c is None or c.v_start is None or c.v_dur is None:
            break
        if c.fill != SLATE:
            gone = (prev.v_start or 0) + (prev.v_dur or 0) - (c.v_start + c.v_dur)
            return c.received_at + timedelta(microseconds=round(gone * 1_000_000 / grid.TICKS))
    return prev.received_at


def _slot(run: int, seq: int, prev: ChunkState | None, c: ChunkState | None, nxt: ChunkState | None, nominal: int,
          max_frames: int, frame: int, rate: int, fps: Fraction, reason: str, *, frames: int | None = None
          ) -> SlotClaim:
    """Where a slate goes: right after the previous segment (or, for a run's first slot, where its own
    chunk sits), as long as its chunk would have lasted (or `frames`)."""
    if prev is not None:
        assert prev.v_start is not None and prev.v_dur is not None and prev.a_start is not None
        assert prev.a_dur is not None
        v_start = prev.v_start + prev.v_dur
        a_start = prev.a_start + prev.a_dur
    else:
        assert c is not None and c.v_start is not None and c.a_start is not None
        v_start, a_start = c.v_start, c.a_start
    given = frames
    frames = nominal
    if given is not None:
        frames = given
    elif c is not None and c.v_dur:
        frames = round(c.v_dur / frame)
    elif nxt is not None and nxt.v_start is not None and nxt.v_start > v_start:
        frames = round((nxt.v_start - v_start) / frame)
    frames = max(1, min(frames, max_frames))
    v_dur = frames * frame
    end_samples = grid.samples(v_start + v_dur, rate)
    a_end: int | None = None
    if c is not None and c.a_start is not None and c.a_dur:
        a_end = c.a_start + c.a_dur
    elif nxt is not None and nxt.a_start is not None:
        a_end = nxt.a_start
    if a_end is None or not 0 < a_end - a_start <= grid.samples(max_frames * frame, rate) + grid.AAC_FRAME \
            or abs(a_end - end_samples) > 2 * grid.AAC_FRAME:
        # The run's audio grid (phase) at the slot's video end.
        k = max(1, round((end_samples - a_start) / grid.AAC_FRAME))
        a_end = a_start + k * grid.AAC_FRAME
    a_frames = max(1, (a_end - a_start) // grid.AAC_FRAME)
    return SlotClaim(run, seq, v_start, v_dur, a_start, a_frames * grid.AAC_FRAME, reason)


def _anchor(info: RunInfo | None, c: ChunkState, prev_end: tuple[int, int, datetime] | None,
            shape: ChannelShape, now: datetime) -> datetime:
    """PDT of a new Period's first segment: the run's wall clock for its media time, never before the
    previous Period's end. Within a run (a clock step) the wall clock says where the media would be if
    the step were real: an outage moves PDT on; a glitch keeps it where the previous segment ended."""
    if info is None:
        base = prev_end[2] if prev_end is not None else now
    else:
        base = info.availability_start + timedelta(microseconds=round((c.v_start or 0) * 1_000_000 / grid.TICKS))
    if prev_end is None:
        return base
    if base < prev_end[2]:
        return prev_end[2]
    # A step within a run: trust the arrival time over the encoder's clock.
    arrival = c.received_at - timedelta(seconds=(c.v_dur or 0) / grid.TICKS)
    if arrival - prev_end[2] < timedelta(seconds=2 * shape.segment_duration):
        return prev_end[2]
    return max(prev_end[2], min(base, arrival))


def _window(segments: list[Segment], dvr_window: float) -> tuple[list[Segment], list[Segment]]:
    """Keep the segments whose end lies within the DVR window of listed media before the newest end."""
    if not segments:
        return [], []
    total = 0.0
    cut = len(segments)
    while cut > 0 and total < dvr_window - 1e-9:
        cut -= 1
        total += segments[cut].duration
    return segments[cut:], segments[:cut]
