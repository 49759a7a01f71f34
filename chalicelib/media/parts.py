"""Low-Latency HLS partial segments: the pure model (issue #12).

A low-latency channel's encoder uploads every segment as `k` parts (`part_duration` each, e.g. 4 x 0.5 s
for 2 s segments), each starting on an IDR. Every part is transcoded on arrival into one CMAF fragment
per rendition, published at its own URL `{rendition}/{run}/{seq:08d}.{part}.m4s`; when all `k` parts of a
segment are there, the full segment (styp + the parts' fragments, tfdt untouched) is written at the
regular URL for every player that does not do LL-HLS.

Why separate part files and not byte ranges of the segment: a part must be servable the moment it is
transcoded, but the segment object is written once (If-None-Match) and served immutable, and S3 cannot
append. Byte-range parts would need a growing object (no S3 write can do that, and no cache could keep it
immutable) or a second copy anyway. Own URLs are also what CloudFront caches best: one immutable object
per part.

Slots (the same rules as chunks, `pipeline.assemble`, at part granularity): every (seq, part) slot is
listed once, as media or as a slate part; a slot whose part is missing or late is slated once a later
part has been ready for `wait`; a corrupt part at once; a media claim in progress gets `stale` to
finish. A segment's first part never waits for the parts of earlier segments' holes beyond that rule,
and a part is transcoded the moment it arrives, whatever the parts before it do.

Grids: part `i` of a segment of N nominal frames covers frames [round(N*i/k), round(N*(i+1)/k)) of
it (12/13/12/13 frames for 0.5 s parts at 25 fps); its audio is the encoder's AAC frames that start in
it (copied), so PART-TARGET is the longest video part plus two AAC frames.

Pure: no I/O, no clock (`now` is an argument).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from ..errors import ValidationError
from . import grid

MIN_PART = 0.2  # seconds: shorter parts cost more requests than they save latency
MAX_PARTS = 10  # per segment: the part index is one digit in URLs and CloudFront path patterns
AUDIO_SLACK_FRAMES = 2  # AAC frames a part's audio may run past its video (see PartSpec.part_target)
RECEIVED, INVALID = "received", "invalid"
MEDIA, SLATE = "media", "slate"


def parts_per_segment(part_duration: float, segment_duration: float) -> int:
    """How many parts make a segment; ValidationError unless the part divides the segment evenly."""
    if not math.isfinite(part_duration) or part_duration < MIN_PART:
        raise ValidationError(f"part_duration {part_duration!r} s: use at least {MIN_PART} s")
    k = segment_duration / part_duration
    if abs(k - round(k)) > 1e-6 or not 2 <= round(k) <= MAX_PARTS:
        raise ValidationError(
            f"part_duration {part_duration:g} s must divide the {segment_duration:g} s segments into 2 to "
            f"{MAX_PARTS} equal parts (e.g. {segment_duration / 4:g} s)")
    return round(k)


def _ceil_ms(seconds: float) -> float:
    return math.ceil(seconds * 1000 - 1e-6) / 1000


@dataclass(frozen=True)
class PartSpec:
    """A channel's part layout: how many, how long, and the LL-HLS numbers derived from it."""

    part_duration: float
    segment_duration: float
    fps: Fraction
    sample_rate: int = 48_000

    @property
    def count(self) -> int:
        return parts_per_segment(self.part_duration, self.segment_duration)

    @property
    def segment_frames(self) -> int:
        return grid.nominal_frames(self.segment_duration, self.fps)

    def part_frames(self, index: int) -> int:
        """Nominal grid frames of part `index` of a segment."""
        n, k = self.segment_frames, self.count
        return _half_up(Fraction(n * (index + 1), k)) - _half_up(Fraction(n * index, k))

    @property
    def part_target(self) -> float:
        """EXT-X-PART-INF:PART-TARGET: no part may be longer. Video parts hold whole grid frames; audio
        parts the encoder's AAC frames that start in them: an encoder's muxer interleaves audio up to a
        frame or two off the video cut (ffmpeg's segment muxer: 22 to 26 frames in 0.5 s parts), so the
        target leaves two AAC frames over the longest video part."""
        longest = max(self.part_frames(i) for i in range(self.count))
        return _ceil_ms(float(Fraction(longest) / self.fps) + AUDIO_SLACK_FRAMES * grid.AAC_FRAME / self.sample_rate)

    @property
    def part_hold_back(self) -> float:
        """PART-HOLD-BACK: RFC 8216bis requires at least 2 x PART-TARGET and recommends 3 x; 3 x leaves a
        player one part of slack for a part that is late by up to a part duration."""
        return round(3 * self.part_target, 3)

    def fits(self, v_dur: int, a_dur: int, timescale: int = grid.TICKS) -> bool:
        """Can a part of this many video ticks and audio samples be listed under PART-TARGET?"""
        return v_dur / timescale <= self.part_target + 1e-9 and a_dur / self.sample_rate <= self.part_target + 1e-9


def _half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def spec_for(part_duration: float, segment_duration: float, fps: Fraction, sample_rate: int) -> PartSpec | None:
    """The channel's PartSpec, or None when it is not a low-latency channel (part_duration 0)."""
    if not part_duration:
        return None
    spec = PartSpec(float(part_duration), float(segment_duration), fps, sample_rate)
    spec.count  # noqa: B018 -- validates
    return spec


# --------------------------------------------------------------------------- part slots


@dataclass(frozen=True)
class PartState:
    """One PRT# item, as the part planner needs it."""

    seq: int
    index: int
    received_at: datetime
    status: str = RECEIVED
    v_start: int | None = None  # 90 kHz ticks on the run's clock (ingest's plan, then what the transcode made)
    v_dur: int | None = None
    a_start: int | None = None  # samples
    a_dur: int | None = None
    done: frozenset[str] = frozenset()  # renditions whose part file exists
    done_at: datetime | None = None
    fill: str = ""  # "" | MEDIA (a worker is uploading it) | SLATE (the packager owns the slot)
    claimed_at: datetime | None = None
    slate_written: bool = False  # the slate part files exist
    late: bool = False
    codecs: Mapping[str, str] = field(default_factory=dict, compare=False)
    etag: str = ""  # the accepted upload's ETag ("" for a slate part)

    @property
    def key(self) -> tuple[int, int]:
        return self.seq, self.index

    def filled(self, renditions: frozenset[str]) -> bool:
        """Listable: its files exist in every rendition (media), or it is a written slate part."""
        if self.fill == SLATE:
            return self.slate_written and self.v_start is not None and self.a_start is not None
        return (self.status == RECEIVED and renditions <= self.done and self.v_start is not None
                and self.v_dur is not None and self.a_start is not None and self.a_dur is not None)

    @property
    def ready_at(self) -> datetime:
        return self.done_at or self.received_at

    @property
    def v_end(self) -> int:
        assert self.v_start is not None and self.v_dur is not None
        return self.v_start + self.v_dur

    @property
    def a_end(self) -> int:
        assert self.a_start is not None and self.a_dur is not None
        return self.a_start + self.a_dur


@dataclass(frozen=True)
class PartClaim:
    """A part slot to fill with slate: where it goes on the grids."""

    seq: int
    index: int
    v_start: int
    v_dur: int
    a_start: int
    a_dur: int
    reason: str  # "missing" | "late" | "invalid" | "stopped"


@dataclass(frozen=True)
class PartPlan:
    listed: tuple[PartState, ...] = ()  # the contiguous run of listable parts from the start, in order
    claims: tuple[PartClaim, ...] = ()  # at most one: the caller claims it and plans again
    complete: tuple[int, ...] = ()  # seqs whose k parts are all listed: their full segment can be written
    recheck_at: datetime | None = None  # when a waiting slot can be decided
    short: int | None = None  # sealing: the final seq, to be closed with the parts it has
    start: int | None = None  # seq the walk started at (None: nothing to walk)


def plan_parts(spec: PartSpec, parts: Mapping[tuple[int, int], PartState], renditions: frozenset[str],
               now: datetime, *, start_seq: int | None, prev_end: tuple[int, int] | None, wait: timedelta,
               stale: timedelta, slate_ready: bool = True, sealing: bool = False, frame_ticks: int = 3600,
               rate: int = 48_000) -> PartPlan:
    """Walk the part slots of a run forward from `start_seq` part 0 (the first segment not yet written
    in full), whose video and audio start at `prev_end` (None: the run has no segment yet, so there is
    no clock to put a slate on before its first real part)."""
    if not parts:
        return PartPlan()
    newest = max(parts)
    if start_seq is None:
        start_seq = min(s for s, _ in parts)
    ready = sorted((p.key, p.ready_at) for p in parts.values() if p.filled(renditions) and p.seq >= start_seq)
    if prev_end is None:
        # A run starts with a real part 0. If the lowest one never comes, start at the next segment whose
        # part 0 has been ready for `wait` (the parts before it are late, as chunks before a run's start are).
        first = parts.get((start_seq, 0))
        if first is None or not first.filled(renditions):
            starts = [key for key, t in ready if key[1] == 0 and key[0] > start_seq and t + wait <= now]
            if not starts:
                waits = [t + wait for key, t in ready if key[1] == 0 and key[0] > start_seq]
                return PartPlan(recheck_at=min(waits) if waits else None, start=start_seq)
            start_seq = starts[0][0]
    seq, idx = start_seq, 0
    k = spec.count
    listed: list[PartState] = []
    recheck: list[datetime] = []
    claims: list[PartClaim] = []
    end = prev_end
    while (seq, idx) <= newest:
        p = parts.get((seq, idx))
        if p is not None and p.filled(renditions):
            listed.append(p)
            end = (p.v_end, p.a_end)
            seq, idx = (seq, idx + 1) if idx + 1 < k else (seq + 1, 0)
            continue
        later = [t for key, t in ready if key > (seq, idx)]
        reason = ""
        if p is not None and p.status == INVALID:
            reason = "invalid"
        elif later:
            due = min(later) + wait
            if due <= now:
                reason = "missing" if p is None else "late"
            else:
                recheck.append(due)
        if not reason and sealing and any(key > (seq, idx) for key in parts):
            reason = "stopped"
        if p is not None and p.fill == MEDIA and reason and reason != "invalid" and (
                p.claimed_at is None or now - p.claimed_at < stale):
            recheck.append((p.claimed_at or now) + stale)  # its worker is uploading: let it finish
            break
        if not reason or end is None:
            break
        if not slate_ready:
            recheck.append(now + timedelta(seconds=0.5))
            break
        nxt = parts.get((seq, idx + 1) if idx + 1 < k else (seq + 1, 0))
        claims.append(part_slot(spec, seq, idx, end, p, nxt, frame_ticks, rate, reason))
        break
    counts: dict[int, int] = {}
    for p in listed:
        counts[p.seq] = counts.get(p.seq, 0) + 1
    complete = tuple(s for s in sorted(counts) if counts[s] == k)
    short = None
    if sealing and not claims and listed and listed[-1].index + 1 < k and listed[-1].seq not in complete \
            and not any(key > listed[-1].key for key in parts):
        short = listed[-1].seq
    return PartPlan(tuple(listed), tuple(claims), complete, min(recheck) if recheck else None, short, start_seq)


def part_slot(spec: PartSpec, seq: int, index: int, prev_end: tuple[int, int], cur: PartState | None,
              nxt: PartState | None, frame_ticks: int, rate: int, reason: str) -> PartClaim:
    """Where a slate part goes: right after the previous part, as long as its own part would have lasted
    (its probed span), or up to the next part, or one nominal part."""
    v_start, a_start = prev_end
    frames = spec.part_frames(index)
    if cur is not None and cur.v_dur:
        frames = round(cur.v_dur / frame_ticks)
    elif nxt is not None and nxt.v_start is not None and nxt.v_start > v_start:
        frames = round((nxt.v_start - v_start) / frame_ticks)
    limit = max(1, math.floor(spec.part_target * grid.TICKS / frame_ticks))
    frames = max(1, min(frames, limit))
    v_dur = frames * frame_ticks
    end_samples = grid.samples(v_start + v_dur, rate)
    a_end: int | None = None
    if cur is not None and cur.a_start is not None and cur.a_dur:
        a_end = cur.a_start + cur.a_dur
    elif nxt is not None and nxt.a_start is not None:
        a_end = nxt.a_start
    most = math.floor(spec.part_target * rate / grid.AAC_FRAME)
    if a_end is None or not 0 < a_end - a_start <= most * grid.AAC_FRAME or abs(a_end - end_samples) > grid.AAC_FRAME:
        a_end = a_start + max(1, round((end_samples - a_start) / grid.AAC_FRAME)) * grid.AAC_FRAME
    a_frames = max(1, min(most, (a_end - a_start) // grid.AAC_FRAME))
    return PartClaim(seq, index, v_start, v_dur, a_start, a_frames * grid.AAC_FRAME, reason)


# --------------------------------------------------------------------------- delivery directives

_NUMBER = re.compile(r"^[0-9]{1,12}$")
SKIP_VALUES = ("YES", "v2")


@dataclass(frozen=True)
class Directives:
    """RFC 8216bis 6.2.5 delivery directives of one playlist request."""

    msn: int | None = None  # _HLS_msn
    part: int | None = None  # _HLS_part
    skip: str = ""  # _HLS_skip: "" | "YES" | "v2"

    @property
    def blocking(self) -> bool:
        return self.msn is not None


def parse_directives(query: Iterable[tuple[str, str]]) -> Directives:
    """The directives among a request's query parameters (others, like CMCD, are ignored). A malformed
    one is a ValidationError saying which and why: the origin answers 400, never blocks on it."""
    seen: dict[str, str] = {}
    for name, value in query:
        if not name.startswith("_HLS_"):
            continue
        if name not in ("_HLS_msn", "_HLS_part", "_HLS_skip"):
            raise ValidationError(f"unknown delivery directive {name[:40]!r}; use _HLS_msn, _HLS_part, _HLS_skip")
        if name in seen:
            raise ValidationError(f"delivery directive {name} appears more than once")
        seen[name] = value
    msn = _number(seen, "_HLS_msn")
    part = _number(seen, "_HLS_part")
    if part is not None and msn is None:
        raise ValidationError("_HLS_part needs _HLS_msn (RFC 8216bis 6.2.5.2)")
    skip = seen.get("_HLS_skip", "")
    if "_HLS_skip" in seen and skip not in SKIP_VALUES:
        raise ValidationError(f"_HLS_skip={skip[:20]!r}: use YES or v2")
    return Directives(msn, part, skip)


def _number(seen: Mapping[str, str], name: str) -> int | None:
    if name not in seen:
        return None
    value = seen[name]
    if not _NUMBER.match(value):
        raise ValidationError(f"{name}={value[:20]!r} is not a non-negative decimal integer")
    return int(value)


@dataclass(frozen=True)
class Edge:
    """Where a rendered LL playlist ends: what a blocking request is compared with."""

    last_msn: int | None  # the last complete segment (None: none yet)
    part_msn: int | None = None  # the segment holding the last listed part
    part_index: int | None = None  # that part's index
    parts: int = 4  # parts per segment

    def has(self, msn: int, part: int | None) -> bool:
        """Does the playlist already contain segment `msn` (complete), or part `part` of it?"""
        if part is None:
            return self.last_msn is not None and self.last_msn >= msn
        if part >= self.parts:  # beyond the last part of `msn`: the first part of the next one
            msn, part = msn + 1, 0
        if self.last_msn is not None and self.last_msn >= msn:
            return True
        if self.part_msn is None or self.part_index is None:
            return False
        return (self.part_msn, self.part_index) >= (msn, part)

    def check(self, d: Directives) -> None:
        """RFC 8216bis 6.2.5.2: 400 for a request too far ahead of the playlist."""
        if d.msn is None:
            return
        last = self.part_msn if self.part_msn is not None else self.last_msn
        if last is not None and d.msn > last + 2:
            raise ValidationError(f"_HLS_msn={d.msn} is more than two segments beyond the last one ({last})")
        if d.part is not None and d.part > self.parts:
            raise ValidationError(f"_HLS_part={d.part} is beyond the last part index of a segment "
                                  f"({self.parts - 1}; {self.parts} means the next segment's first part)")
        if d.part is not None and last is not None and d.msn == last + 2 and d.part > 0:
            raise ValidationError(f"_HLS_part={d.part} of segment {d.msn} is beyond the advance limit "
                                  f"(at most part 0 of segment {last + 2})")
