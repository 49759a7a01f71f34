"""SCTE-35 cues: build and read splice_info_sections through `threefive`.

We never pack bits by hand: threefive encodes the section (including CRC-32) and decodes
whatever an encoder sends. This module only adds what the packager needs on top:

- a frozen `Cue` value (hashable, cheap to pass around, safe to cache),
- 33-bit PTS arithmetic at 90 kHz (`pts_to_ticks` / `ticks_to_pts`),
- strict input checking, because threefive prints to stderr and returns half-filled objects
  on garbage instead of raising.

Builders are memoised: the packager re-renders every playlist on every segment, and the same
break produces the same bytes each time, so encoding once per break keeps rendering cheap.
"""

from __future__ import annotations

import base64 as b64
import binascii
import builtins
import contextlib
import io
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from threefive import Cue as _TFCue
from threefive import stuff as _tf_stuff
from threefive.commands import SpliceInsert, SpliceNull, TimeSignal
from threefive.crc import crc32
from threefive.descriptors import SegmentationDescriptor

from ..errors import ValidationError

TICKS_PER_SECOND = 90_000
PTS_WRAP = 1 << 33  # PTS is a 33-bit counter of 90 kHz ticks (wraps after ~26.5 h)

# segmentation_type_id values (SCTE-35 2023 Table 23) we generate.
SEGMENTATION_TYPES: dict[str, int] = {
    "provider_po_start": 0x34,
    "provider_po_end": 0x35,
    "distributor_po_start": 0x36,
    "distributor_po_end": 0x37,
    "break_start": 0x22,
    "break_end": 0x23,
    "provider_ad_start": 0x30,
    "provider_ad_end": 0x31,
    "distributor_ad_start": 0x32,
    "distributor_ad_end": 0x33,
    "provider_overlay_po_start": 0x38,
    "provider_overlay_po_end": 0x39,
    "distributor_overlay_po_start": 0x3A,
    "distributor_overlay_po_end": 0x3B,
    "program_start": 0x10,
    "program_end": 0x11,
}
_SEGMENTATION_NAMES = {v: k for k, v in SEGMENTATION_TYPES.items()}
# Types that open an avail (an "out"); their *_end partner is type_id + 1.
OUT_SEGMENTATION_TYPES = frozenset({0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3A, 0x44, 0x46})
IN_SEGMENTATION_TYPES = frozenset(t + 1 for t in OUT_SEGMENTATION_TYPES)

# MediaPackage's SCTE filter names (ScteFilter) -> the segmentation_type_id that starts the pair
# (the pair's end is that + 1). SPLICE_INSERT is the command itself.
SCTE_FILTERS: dict[str, int | None] = {
    "SPLICE_INSERT": None,
    "BREAK": 0x22,
    "PROVIDER_ADVERTISEMENT": 0x30,
    "DISTRIBUTOR_ADVERTISEMENT": 0x32,
    "PROVIDER_PLACEMENT_OPPORTUNITY": 0x34,
    "DISTRIBUTOR_PLACEMENT_OPPORTUNITY": 0x36,
    "PROVIDER_OVERLAY_PLACEMENT_OPPORTUNITY": 0x38,
    "DISTRIBUTOR_OVERLAY_PLACEMENT_OPPORTUNITY": 0x3A,
    "PROGRAM": 0x10,
}
_FILTER_BY_TYPE = {v: k for k, v in SCTE_FILTERS.items() if v is not None}
# MediaPackage's default is all nine; PROGRAM is left out here because every filtered pair becomes an
# ad break, and a program boundary is not an avail (ask for it explicitly to get one).
DEFAULT_SCTE_FILTER: tuple[str, ...] = tuple(k for k in SCTE_FILTERS if k != "PROGRAM")


def check_filter(names: object) -> tuple[str, ...]:
    """A channel's SCTE filter: a list of MediaPackage ScteFilter names (ValidationError names the allowed)."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValidationError(f"scte_filter must be a list of names; allowed: {', '.join(SCTE_FILTERS)}")
    bad = [n for n in names if n not in SCTE_FILTERS]
    if bad:
        raise ValidationError(f"unknown scte_filter value(s) {bad}; allowed: {', '.join(SCTE_FILTERS)}")
    return tuple(dict.fromkeys(names))


_COMMAND_NAMES = {0: "splice_null", 4: "splice_schedule", 5: "splice_insert", 6: "time_signal",
                  7: "bandwidth_reservation", 255: "private_command"}


def segmentation_name(type_id: int) -> str | None:
    """Our name for a segmentation_type_id we can build ("provider_ad_end" for 0x31), else None."""
    return _SEGMENTATION_NAMES.get(type_id)


def pts_to_ticks(seconds: float) -> int:
    """Seconds of media time -> 90 kHz ticks modulo 2**33 (negative times wrap too)."""
    return round(seconds * TICKS_PER_SECOND) % PTS_WRAP


def ticks_to_pts(ticks: int) -> float:
    """90 kHz ticks (any integer, wrapped to 33 bits) -> seconds in [0, 2**33 / 90000)."""
    return (ticks % PTS_WRAP) / TICKS_PER_SECOND


def _duration_ticks(seconds: float) -> int:
    if seconds < 0 or seconds * TICKS_PER_SECOND >= PTS_WRAP:
        raise ValidationError(f"SCTE-35 duration {seconds!r}s is out of range (0 .. ~95443 s)")
    return round(seconds * TICKS_PER_SECOND)


@dataclass(frozen=True)
class Segmentation:
    """One segmentation_descriptor of a cue (a time_signal may carry several: a PO end and the next PO
    start, an ad start nested in a PO start, ...)."""

    event_id: int
    type_id: int | None  # None when the descriptor cancels its event (a cancel carries no type)
    duration: float | None
    cancelled: bool
    upid: str = ""


@dataclass(frozen=True)
class Cue:
    """One decoded (or freshly built) splice_info_section."""

    command: str  # "splice_insert" | "time_signal" | "splice_null" | ...
    event_id: int | None  # splice_event_id, or segmentation_event_id for time_signal
    out_of_network: bool  # True for a splice-out / placement opportunity start
    pts: float | None  # splice time in seconds (33-bit wrapped, pts_adjustment applied)
    duration: float | None  # break_duration or segmentation_duration, seconds
    auto_return: bool
    cancelled: bool
    segmentation_type_id: int | None
    data: builtins.bytes  # the whole section, CRC included
    immediate: bool = False  # splice_immediate_flag, or a time_signal without a time: "at the cue's position"
    upid: str = ""  # segmentation_upid as 0x-hex (what EXT-X-ASSET's CAID carries), "" without one
    # Every segmentation_descriptor, in section order; the fields above describe the first one.
    segmentations: tuple[Segmentation, ...] = ()

    def for_segmentation(self, seg: Segmentation) -> Cue:
        """This time_signal as if `seg` were its only descriptor (same bytes: the section stays verbatim)."""
        return replace(self, event_id=seg.event_id, segmentation_type_id=seg.type_id, duration=seg.duration,
                       cancelled=seg.cancelled, upid=seg.upid, segmentations=(seg,),
                       out_of_network=seg.type_id in OUT_SEGMENTATION_TYPES if self.command == "time_signal"
                       else self.out_of_network)

    @property
    def bytes(self) -> builtins.bytes:
        return self.data

    @property
    def base64(self) -> str:
        return b64.b64encode(self.data).decode("ascii")

    @property
    def hex(self) -> str:
        """`0x`-prefixed upper-case-free hex, the form DATERANGE SCTE35-OUT/IN carries."""
        return "0x" + self.data.hex()

    @property
    def pts_ticks(self) -> int | None:
        return None if self.pts is None else pts_to_ticks(self.pts)

    @property
    def segmentation_type(self) -> str | None:
        """Our name for the segmentation type ("provider_po_start", ...) when we know it."""
        if self.segmentation_type_id is None:
            return None
        return _SEGMENTATION_NAMES.get(self.segmentation_type_id)

    @property
    def filter_type(self) -> str | None:
        """The MediaPackage SCTE filter name this cue belongs to (SPLICE_INSERT, BREAK, ...), or None."""
        if self.command == "splice_insert":
            return "SPLICE_INSERT"
        t = self.segmentation_type_id
        if self.command != "time_signal" or t is None:
            return None
        return _FILTER_BY_TYPE.get(t) or _FILTER_BY_TYPE.get(t - 1)

    @property
    def starts_avail(self) -> bool:
        """time_signal: the descriptor is the start of its pair (0x34), not the end (0x35)."""
        t = self.segmentation_type_id
        return t is not None and t in _FILTER_BY_TYPE

    @property
    def is_out(self) -> bool:
        """Does this cue start an avail (splice-out or a PO/break start)?"""
        if self.cancelled:
            return False
        if self.command == "time_signal":
            return self.segmentation_type_id in OUT_SEGMENTATION_TYPES
        return self.out_of_network


def _quiet(fn: Any, *args: Any) -> Any:
    """Call into threefive with its stderr chatter swallowed.

    threefive reports problems (and benign things such as a splice time of exactly 0) by
    printing to the `stderr` it bound at import time, so `contextlib.redirect_stderr` cannot
    reach it; swap that module global for the call. We validate inputs ourselves and raise
    ValidationError, so nothing useful is lost.
    """
    saved = _tf_stuff.stderr
    _tf_stuff.stderr = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(*args)
    finally:
        _tf_stuff.stderr = saved


def _encode(command: Any, descriptors: list[Any]) -> bytes:
    cue = _TFCue()
    cue.command = command
    cue.descriptors = descriptors
    encoded = _quiet(cue.encode)
    if not encoded:
        raise ValidationError("threefive could not encode the SCTE-35 cue")
    return bytes(cue.bites)


@lru_cache(maxsize=4096)
def splice_insert(
    event_id: int,
    pts: float | None,
    duration: float | None,
    out_of_network: bool = True,
    auto_return: bool = True,
) -> Cue:
    """A splice_insert: out (with optional break_duration) or in; `pts=None` means immediate."""
    _check_event_id(event_id)
    cmd = SpliceInsert()
    cmd.splice_event_id = event_id
    cmd.splice_event_cancel_indicator = False
    cmd.out_of_network_indicator = bool(out_of_network)
    cmd.program_splice_flag = True
    cmd.event_id_compliance_flag = True
    cmd.unique_program_id = event_id & 0xFFFF
    cmd.avail_num = 0
    cmd.avails_expected = 0
    if pts is None:
        cmd.splice_immediate_flag = True
        cmd.time_specified_flag = False
    else:
        cmd.splice_immediate_flag = False
        cmd.time_specified_flag = True
        # threefive turns seconds into ticks with round(); feed it the wrapped value so a PTS
        # past 2**33 ticks wraps instead of overflowing the 33-bit field.
        cmd.pts_time = ticks_to_pts(pts_to_ticks(pts))
    if duration is not None:
        cmd.duration_flag = True
        cmd.break_auto_return = bool(auto_return)
        cmd.break_duration = _duration_ticks(duration) / TICKS_PER_SECOND
    else:
        cmd.duration_flag = False
    return decode(_encode(cmd, []))


@lru_cache(maxsize=4096)
def time_signal(pts: float | None, segmentation_type: str, duration: float | None, event_id: int) -> Cue:
    """A time_signal carrying one segmentation_descriptor (placement opportunity start/end)."""
    _check_event_id(event_id)
    if segmentation_type not in SEGMENTATION_TYPES:
        raise ValidationError(
            f"unknown segmentation type {segmentation_type!r}; use one of {sorted(SEGMENTATION_TYPES)}"
        )
    cmd = TimeSignal()
    if pts is None:
        cmd.time_specified_flag = False
    else:
        cmd.time_specified_flag = True
        cmd.pts_time = ticks_to_pts(pts_to_ticks(pts))
    d = SegmentationDescriptor()
    d.segmentation_event_id = hex(event_id)
    d.segmentation_event_cancel_indicator = False
    d.segmentation_event_id_compliance_indicator = True
    d.program_segmentation_flag = True
    d.segmentation_duration_flag = duration is not None
    if duration is not None:
        d.segmentation_duration = _duration_ticks(duration) / TICKS_PER_SECOND
    d.delivery_not_restricted_flag = True
    d.segmentation_upid_type = 0
    d.segmentation_upid_length = 0
    d.segmentation_upid = ""
    d.segmentation_type_id = SEGMENTATION_TYPES[segmentation_type]
    d.segment_num = 0
    d.segments_expected = 0
    return decode(_encode(cmd, [d]))


@lru_cache(maxsize=1024)
def cancel(event_id: int) -> Cue:
    """A splice_insert with splice_event_cancel_indicator set: the avail will not happen."""
    _check_event_id(event_id)
    cmd = SpliceInsert()
    cmd.splice_event_id = event_id
    cmd.splice_event_cancel_indicator = True
    return decode(_encode(cmd, []))


def splice_null() -> Cue:
    return decode(_encode(SpliceNull(), []))


def _check_event_id(event_id: int) -> None:
    if isinstance(event_id, bool) or not isinstance(event_id, int) or not 0 <= event_id < 1 << 32:
        raise ValidationError(f"splice event id {event_id!r} must be an integer in 0 .. 2**32-1")


def _to_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if raw[:1] == b"\xfc":
            return raw
        # Bytes that are really text (e.g. read from a file) are treated like a str below.
        try:
            data = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValidationError("SCTE-35 bytes must start with table_id 0xFC") from None
    text = data.strip()
    if not text:
        raise ValidationError("empty SCTE-35 cue")
    try:
        if text[:2].lower() == "0x":
            return bytes.fromhex(text[2:])
        if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text) and text[:2].lower() == "fc":
            return bytes.fromhex(text)
        return b64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise ValidationError(f"SCTE-35 cue {text[:40]!r} is neither base64 nor 0x-hex") from None


def decode(data: str | bytes | bytearray | memoryview) -> Cue:
    """Decode a base64, 0x-hex or raw-bytes splice_info_section; ValidationError on anything else."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)  # hashable, for the cache
    if not isinstance(data, str | bytes):
        raise ValidationError(f"SCTE-35 cue must be text or bytes, not {type(data).__name__}")
    return _decode(data)


@lru_cache(maxsize=4096)
def _decode(data: str | bytes) -> Cue:
    raw = _to_bytes(data)
    if len(raw) < 17 or raw[0] != 0xFC:
        raise ValidationError("not an SCTE-35 splice_info_section (table_id must be 0xFC)")
    section_length = ((raw[1] & 0x0F) << 8) | raw[2]
    if section_length + 3 != len(raw):
        raise ValidationError(f"SCTE-35 section_length {section_length} does not match {len(raw)} bytes")
    if crc32(raw) != 0:  # CRC-32/MPEG over the whole section, CRC included, is 0 when intact
        raise ValidationError("SCTE-35 CRC-32 mismatch: the cue is corrupt")
    if raw[4] & 0x80:
        raise ValidationError("encrypted SCTE-35 cues are not supported")
    try:
        tf = _quiet(_TFCue, raw)
    except Exception as exc:  # threefive raises assorted TypeErrors on malformed bodies
        raise ValidationError(f"malformed SCTE-35 cue: {exc}") from None
    if tf.command is None:
        raise ValidationError("SCTE-35 cue has an unknown splice command")
    return _from_threefive(tf, raw)


def _from_threefive(tf: Any, raw: bytes) -> Cue:
    cmd = tf.command
    ctype = cmd.command_type
    name = _COMMAND_NAMES.get(ctype, f"command_{ctype}")
    adjustment = round((tf.info_section.pts_adjustment or 0) * TICKS_PER_SECOND)
    pts: float | None = None
    if getattr(cmd, "time_specified_flag", False) and cmd.pts_time is not None:
        pts = ticks_to_pts(round(cmd.pts_time * TICKS_PER_SECOND) + adjustment)
    immediate = ctype == 6 and pts is None
    upid = ""
    event_id: int | None = None
    out = False
    duration: float | None = None
    auto_return = False
    cancelled = False
    seg_type: int | None = None
    if ctype == 5:
        event_id = cmd.splice_event_id
        cancelled = bool(cmd.splice_event_cancel_indicator)
        out = bool(cmd.out_of_network_indicator)
        immediate = bool(cmd.splice_immediate_flag)
        if cmd.duration_flag:
            duration = cmd.break_duration
            auto_return = bool(cmd.break_auto_return)
    segs: list[Segmentation] = []
    for d in tf.descriptors:
        if getattr(d, "tag", None) != 2:
            continue  # only segmentation descriptors carry avail semantics
        seg_id = int(d.segmentation_event_id, 16)
        if d.segmentation_event_cancel_indicator:
            segs.append(Segmentation(seg_id, None, None, True))
        else:
            seg_dur = d.segmentation_duration if d.segmentation_duration_flag else None
            segs.append(Segmentation(seg_id, d.segmentation_type_id, seg_dur, False, _upid_hex(d.segmentation_upid)))
    if segs:
        first = segs[0]
        if event_id is None:
            event_id = first.event_id
        if first.cancelled:
            cancelled = True
        else:
            seg_type, upid = first.type_id, first.upid
            if duration is None:
                duration = first.duration
            if ctype == 6:
                out = seg_type in OUT_SEGMENTATION_TYPES
    return Cue(
        command=name,
        event_id=event_id,
        out_of_network=out,
        pts=pts,
        duration=duration,
        auto_return=auto_return,
        cancelled=cancelled,
        segmentation_type_id=seg_type,
        data=raw,
        immediate=immediate,
        upid=upid,
        segmentations=tuple(segs),
    )


def _upid_hex(upid: Any) -> str:
    """threefive decodes a UPID to text ('0x2ca0a18a' for an AiringID, the ASCII of a URI, ...): as 0x-hex."""
    if isinstance(upid, str) and upid:
        if upid[:2].lower() == "0x" and all(c in "0123456789abcdefABCDEF" for c in upid[2:]):
            return "0x" + upid[2:].upper()
        return "0x" + upid.encode().hex().upper()
    return ""


# --- in-band SCTE-35 in MPEG-TS -----------------------------------------------------------------

TS_PACKET = 188


@dataclass(frozen=True)
class TsCue:
    """A splice_info_section found on a PID the PMT declares as stream_type 0x86."""

    cue: Cue
    pid: int
    packet_pts: int | None  # the program's last PES PTS before the section (its position in the stream), 90 kHz


@dataclass(frozen=True)
class TsScan:
    cues: tuple[TsCue, ...]
    dropped: tuple[str, ...] = ()  # one reason per section that was corrupt (bad CRC, malformed, encrypted)


def _parsed(pids: Any, data: bytes, i: int) -> bool:
    """Whether threefive's Stream.parse does anything with the packet at byte i (see read_ts)."""
    pid = ((data[i + 1] & 0x1F) << 8) | data[i + 2]
    return pid in pids.tables or pid in pids.scte35 or (pid in pids.pcr and bool(data[i + 1] & 0x40))


def read_ts(data: bytes) -> TsScan:
    """Every SCTE-35 section of an MPEG-TS chunk, read with threefive's Stream (PAT -> PMT -> the PIDs of
    stream_type 0x86, sections reassembled across packets). A section that does not decode or whose
    CRC-32 fails is dropped and its reason kept; splice_null (heartbeats) is skipped."""
    from threefive import Stream

    stream = _quiet(Stream, io.BytesIO(b""), False)
    cues: list[TsCue] = []
    dropped: list[str] = []
    # Stream.parse acts on a packet only if its PID is a table (PAT, SDT, PMTs), an SCTE-35 PID, or the PCR
    # PID with payload_unit_start set (a PTS); every other packet it returns None for, touching nothing.
    # Those (nearly all of a chunk: audio and video payload) are skipped here, before the per-call cost.
    pids = getattr(stream, "pids", None)
    if not all(hasattr(pids, a) for a in ("tables", "scte35", "pcr")):
        pids = None  # another threefive: parse every packet
    for i in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        if data[i] != 0x47:
            continue
        if pids is not None and not _parsed(pids, data, i):
            continue
        pkt = data[i : i + TS_PACKET]
        try:
            found = _quiet(stream.parse, pkt)
        except Exception as exc:  # threefive raises assorted errors on a mangled section
            dropped.append(f"unreadable SCTE-35 section at byte {i}: {type(exc).__name__}")
            continue
        if not found:
            continue
        raw = bytes(found.bites or b"")
        try:
            cue = decode(raw)
        except ValidationError as exc:
            dropped.append(str(exc))
            continue
        if cue.command == "splice_null":
            continue
        pd = found.packet_data
        pts = None if pd is None or pd.pts is None else round(pd.pts * TICKS_PER_SECOND)
        cues.append(TsCue(cue, int(pd.pid) if pd is not None else 0, pts))
    return TsScan(tuple(cues), tuple(dropped))


# --- SCTE-35 XML (urn:scte:scte35:2013:xml) -------------------------------------------------------


def _b(v: Any) -> str:
    return "true" if v else "false"


def to_xml(cue: Cue, prefix: str = "scte35") -> str:
    """The cue as an SCTE 35 XML SpliceInfoSection (the `urn:scte:scte35:2013:xml` Event payload), from
    threefive's decode of the section; times in 90 kHz ticks, as the schema has them."""
    tf = _quiet(_TFCue, cue.data)
    info, cmd = tf.info_section, tf.command
    p = prefix
    adj = round((info.pts_adjustment or 0) * TICKS_PER_SECOND)
    tier = int(str(info.tier), 16) if isinstance(info.tier, str) else int(info.tier or 0xFFF)
    out = [f'<{p}:SpliceInfoSection ptsAdjustment="{adj}" protocolVersion="{info.protocol_version or 0}" '
           f'tier="{tier}">']

    def splice_time() -> str:
        if getattr(cmd, "time_specified_flag", False) and cmd.pts_time is not None:
            return f'<{p}:SpliceTime ptsTime="{round(cmd.pts_time * TICKS_PER_SECOND)}"/>'
        return f"<{p}:SpliceTime/>"

    if cmd.command_type == 5:
        attrs = (f'spliceEventId="{cmd.splice_event_id}" '
                 f'spliceEventCancelIndicator="{_b(cmd.splice_event_cancel_indicator)}"')
        if not cmd.splice_event_cancel_indicator:
            attrs += (f' outOfNetworkIndicator="{_b(cmd.out_of_network_indicator)}" '
                      f'spliceImmediateFlag="{_b(cmd.splice_immediate_flag)}" '
                      f'uniqueProgramId="{cmd.unique_program_id or 0}" availNum="{cmd.avail_num or 0}" '
                      f'availsExpected="{cmd.avails_expected or 0}"')
        out.append(f"<{p}:SpliceInsert {attrs}>")
        if not cmd.splice_event_cancel_indicator:
            if cmd.program_splice_flag and not cmd.splice_immediate_flag:
                out.append(f"<{p}:Program>{splice_time()}</{p}:Program>")
            if cmd.duration_flag:
                out.append(f'<{p}:BreakDuration autoReturn="{_b(cmd.break_auto_return)}" '
                           f'duration="{round(cmd.break_duration * TICKS_PER_SECOND)}"/>')
        out.append(f"</{p}:SpliceInsert>")
    elif cmd.command_type == 6:
        out.append(f"<{p}:TimeSignal>{splice_time()}</{p}:TimeSignal>")
    elif cmd.command_type == 0:
        out.append(f"<{p}:SpliceNull/>")
    for d in tf.descriptors:
        if getattr(d, "tag", None) != 2:
            continue
        eid = int(d.segmentation_event_id, 16)
        attrs = (f'segmentationEventId="{eid}" '
                 f'segmentationEventCancelIndicator="{_b(d.segmentation_event_cancel_indicator)}"')
        if d.segmentation_event_cancel_indicator:
            out.append(f"<{p}:SegmentationDescriptor {attrs}/>")
            continue
        attrs += f' segmentationTypeId="{d.segmentation_type_id}" segmentNum="{d.segment_num or 0}" ' \
                 f'segmentsExpected="{d.segments_expected or 0}"'
        if d.segmentation_duration_flag and d.segmentation_duration is not None:
            attrs += f' segmentationDuration="{round(d.segmentation_duration * TICKS_PER_SECOND)}"'
        upid = _upid_hex(d.segmentation_upid)
        body = ""
        if upid:
            body = (f'<{p}:SegmentationUpid segmentationUpidType="{d.segmentation_upid_type}" '
                    f'segmentationUpidFormat="hexbinary">{upid[2:]}</{p}:SegmentationUpid>')
        out.append(f"<{p}:SegmentationDescriptor {attrs}>{body}</{p}:SegmentationDescriptor>")
    out.append(f"</{p}:SpliceInfoSection>")
    return "".join(out)
