"""ISO-BMFF box surgery for CMAF: split ffmpeg's fragmented MP4 into init + media, rebase tfdt.

Why this exists: every chunk of a channel is encoded by a separate ffmpeg process that starts
its clock at zero. Rather than trusting ffmpeg's timestamp offsets (which shift with AAC priming,
edit lists and muxer versions), ffmpeg writes a plain fragmented MP4 starting at 0 and this
module
- cuts it into the init segment (``ftyp`` + ``moov``) and the media part (``moof`` + ``mdat`` pairs),
- rewrites every ``tfdt`` to ``base + (tfdt - first tfdt)`` so the chunk sits at its place on the
  channel timeline (64-bit ``tfdt``, so 90 kHz never wraps),
- renumbers ``mfhd`` so sequence numbers increase across chunks,
- prefixes a CMAF ``styp``.
The init segment is returned untouched; the transcoder checks it is byte-identical across chunks.

Pure bytes in, bytes out: no I/O, unit-tested without ffmpeg.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import TranscodeError

# Boxes that only hold other boxes (the ones we walk into).
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"edts"})
STYP = b"styp"
# CMAF media segment brands: msdh (ISO media segment) and cmfs (CMAF segment). No msix: that brand
# promises a sidx index, which these segments do not carry.
_STYP_PAYLOAD = b"msdh" + struct.pack(">I", 0) + b"msdh" + b"cmfs"
# CMAF header brands (ISO/IEC 23000-19 7.3.2: a CMAF header's ftyp lists cmfc).
_FTYP_PAYLOAD = b"iso6" + struct.pack(">I", 0) + b"iso6" + b"cmfc" + b"mp41"


@dataclass(frozen=True)
class Box:
    type: bytes
    offset: int  # of the box header in the buffer
    size: int  # whole box, header included
    header: int  # 8, or 16 for a 64-bit size

    @property
    def body(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


def iter_boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Boxes laid end to end in data[start:end]; a box overrunning its parent is an error."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise TranscodeError(f"truncated box header at byte {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise TranscodeError(f"truncated 64-bit box header at byte {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # "to the end of the file"
            size = end - pos
        if size < header or pos + size > end:
            raise TranscodeError(f"box {kind!r} at byte {pos} has invalid size {size}")
        yield Box(kind, pos, size, header)
        pos += size


def find(data: bytes | bytearray, path: tuple[bytes, ...], start: int = 0, end: int | None = None) -> list[Box]:
    """All boxes matching a type path such as (b"moof", b"traf", b"tfdt")."""
    found: list[Box] = []
    for box in iter_boxes(data, start, end):
        if box.type != path[0]:
            continue
        if len(path) == 1:
            found.append(box)
        elif box.type in _CONTAINERS:
            found.extend(find(data, path[1:], box.body, box.end))
    return found


@dataclass(frozen=True)
class Split:
    init: bytes  # ftyp + moov
    fragments: tuple[bytes, ...]  # each moof + mdat (plus any boxes between them)


def split(data: bytes) -> Split:
    """Separate init (ftyp+moov) from the fragments; drop trailers (mfra) and free boxes."""
    init = bytearray()
    fragments: list[bytearray] = []
    seen_moov = False
    for box in iter_boxes(data):
        raw = data[box.offset : box.end]
        if box.type in (b"ftyp", b"moov"):
            if fragments:
                raise TranscodeError(f"{box.type.decode()} after the first fragment")
            init += raw
            seen_moov = seen_moov or box.type == b"moov"
        elif box.type == b"moof":
            fragments.append(bytearray(raw))
        elif box.type == b"mdat":
            if not fragments:
                raise TranscodeError("mdat before any moof: not a fragmented MP4")
            fragments[-1] += raw
        elif box.type in (b"mfra", b"free", b"skip", b"sidx", b"styp"):
            continue
        else:
            raise TranscodeError(f"unexpected top-level box {box.type!r} in fragmented MP4")
    if not seen_moov:
        raise TranscodeError("no moov box: ffmpeg did not write an init segment")
    if not fragments:
        raise TranscodeError("no media fragments (empty output)")
    return Split(bytes(init), tuple(bytes(f) for f in fragments))


def _tfdt(data: bytes | bytearray, box: Box) -> tuple[int, int]:
    version = data[box.body]
    if version == 1:
        return 1, struct.unpack_from(">Q", data, box.body + 4)[0]
    return 0, struct.unpack_from(">I", data, box.body + 4)[0]


def decode_time(fragment: bytes) -> int:
    """tfdt of the (first) track fragment."""
    boxes = find(fragment, (b"moof", b"traf", b"tfdt"))
    if not boxes:
        raise TranscodeError("fragment without tfdt")
    return _tfdt(fragment, boxes[0])[1]


def _set_tfdt_v1(fragment: bytes, value: int) -> bytes:
    """Return the fragment with every tfdt = value, as a version-1 (64-bit) box.

    A version-0 box grows by 4 bytes, so moof/traf sizes and trun data offsets (relative to the
    moof with default-base-is-moof) are fixed up too.
    """
    buf = bytearray(fragment)
    moof = next(iter_boxes(buf))
    if moof.type != b"moof" or moof.header != 8:
        raise TranscodeError("fragment does not start with a moof")
    out = bytearray()
    grow = 0
    body = bytearray()
    for traf in iter_boxes(buf, moof.body, moof.end):
        if traf.type != b"traf":
            body += buf[traf.offset : traf.end]
            continue
        inner = bytearray()
        for child in iter_boxes(buf, traf.body, traf.end):
            if child.type == b"tfdt":
                flags = buf[child.body + 1 : child.body + 4]
                new = struct.pack(">I4sB3sQ", 20, b"tfdt", 1, bytes(flags), value)
                grow += len(new) - child.size
                inner += new
            else:
                inner += buf[child.offset : child.end]
        body += struct.pack(">I4s", 8 + len(inner), b"traf") + inner
    out += struct.pack(">I4s", 8 + len(body), b"moof") + body
    if grow:
        for trun in find(out, (b"moof", b"traf", b"trun")):
            trun_flags = int.from_bytes(out[trun.body + 1 : trun.body + 4], "big")
            if trun_flags & 0x1:  # data-offset-present
                pos = trun.body + 8
                (offset,) = struct.unpack_from(">i", out, pos)
                struct.pack_into(">i", out, pos, offset + grow)
    out += buf[moof.end :]
    return bytes(out)


def _set_sequence(fragment: bytes, number: int) -> bytes:
    buf = bytearray(fragment)
    for mfhd in find(buf, (b"moof", b"mfhd")):
        struct.pack_into(">I", buf, mfhd.body + 4, number & 0xFFFFFFFF)
    return bytes(buf)


def media_segment(fragments: tuple[bytes, ...], base: int, first_sequence: int) -> bytes:
    """One CMAF media segment: styp + the fragments, shifted so the first tfdt equals `base`."""
    if base < 0:
        raise TranscodeError(f"negative base decode time {base}")
    origin = decode_time(fragments[0])
    out = bytearray(struct.pack(">I4s", 8 + len(_STYP_PAYLOAD), STYP) + _STYP_PAYLOAD)
    for i, frag in enumerate(fragments):
        rebased = _set_tfdt_v1(frag, base + decode_time(frag) - origin)
        out += _set_sequence(rebased, first_sequence + i)
    return bytes(out)


@dataclass(frozen=True)
class FragmentInfo:
    decode_time: int  # tfdt, in the track timescale
    duration: int  # sum of sample durations, track timescale
    samples: int
    offset: int  # byte offset of the moof within the segment (for byte-range addressing)
    size: int  # moof + mdat bytes
    starts_with_sync: bool  # first sample is a sync sample (IDR for video)
    # Earliest composition (presentation) time, track timescale: what a player shows first and
    # what a DASH SegmentTimeline @t must say. Equals decode_time for our output.
    earliest_presentation: int = 0
    # Bytes from the moof to the end of the first sample: the byte range of an I-frame playlist entry
    # (moof + mdat header + the IDR, which is the fragment's first sample).
    first_sample_end: int = 0


def _trex_defaults(init: bytes) -> tuple[int, int]:
    """(default_sample_duration, default_sample_flags) from moov/mvex/trex, 0s when absent."""
    for trex in find(init, (b"moov", b"mvex", b"trex")):
        duration, _size, flags = struct.unpack_from(">III", init, trex.body + 12)
        return duration, flags
    return 0, 0


def timescale(init: bytes) -> int:
    """The media timescale of the (single) track, from moov/trak/mdia/mdhd."""
    boxes = find(init, (b"moov", b"trak", b"mdia", b"mdhd"))
    if not boxes:
        raise TranscodeError("init segment without mdhd")
    box = boxes[0]
    version = init[box.body]
    return int(struct.unpack_from(">I", init, box.body + (20 if version == 1 else 12))[0])


def fragments_info(segment: bytes, init: bytes = b"") -> list[FragmentInfo]:
    """Timing and sync facts of every fragment in a media segment (styp + moof/mdat...)."""
    default_duration, default_flags = _trex_defaults(init) if init else (0, 0)
    infos: list[FragmentInfo] = []
    top = [b for b in iter_boxes(segment) if b.type in (b"moof", b"mdat")]
    for i, moof in enumerate(top):
        if moof.type != b"moof":
            continue
        end = top[i + 1].end if i + 1 < len(top) and top[i + 1].type == b"mdat" else moof.end
        traf = find(segment, (b"traf",), moof.body, moof.end)[0]
        frag_duration, frag_flags = _tfhd_defaults(segment, traf, (default_duration, default_flags))
        total = samples = 0
        first_flags: int | None = None
        earliest: int | None = None
        first_end = 0
        default_size = _tfhd_default_size(segment, traf)
        for trun in find(segment, (b"traf", b"trun"), moof.body, moof.end):
            signed = segment[trun.body] == 1
            flags = int.from_bytes(segment[trun.body + 1 : trun.body + 4], "big")
            (count,) = struct.unpack_from(">I", segment, trun.body + 4)
            pos = trun.body + 8
            data_offset = 0
            if flags & 0x001:
                (data_offset,) = struct.unpack_from(">i", segment, pos)
                pos += 4
            first_sample_flags = None
            if flags & 0x004:
                (first_sample_flags,) = struct.unpack_from(">I", segment, pos)
                pos += 4
            for n in range(count):
                duration, sflags = frag_duration, frag_flags
                if flags & 0x100:
                    (duration,) = struct.unpack_from(">I", segment, pos)
                    pos += 4
                size = default_size
                if flags & 0x200:
                    (size,) = struct.unpack_from(">I", segment, pos)
                    pos += 4
                if n == 0 and not first_end:
                    first_end = data_offset + size  # default-base-is-moof: relative to the moof
                if flags & 0x400:
                    (sflags,) = struct.unpack_from(">I", segment, pos)
                    pos += 4
                cto = 0
                if flags & 0x800:
                    (cto,) = struct.unpack_from(">i" if signed else ">I", segment, pos)
                    pos += 4
                earliest = total + cto if earliest is None else min(earliest, total + cto)
                if n == 0 and first_sample_flags is not None:
                    sflags = first_sample_flags
                if first_flags is None:
                    first_flags = sflags
                total += duration
            samples += count
        # sample_is_non_sync_sample is bit 16 of the sample flags.
        sync = first_flags is not None and not (first_flags >> 16) & 1
        tfdt = find(segment, (b"traf", b"tfdt"), moof.body, moof.end)
        base = _tfdt(segment, tfdt[0])[1] if tfdt else 0
        infos.append(
            FragmentInfo(
                decode_time=base,
                duration=total,
                samples=samples,
                offset=moof.offset,
                size=end - moof.offset,
                starts_with_sync=sync,
                earliest_presentation=base + (earliest or 0),
                first_sample_end=first_end,
            )
        )
    return infos


def _tfhd_default_size(buf: bytes | bytearray, traf: Box) -> int:
    tfhd = find(buf, (b"tfhd",), traf.body, traf.end)
    if not tfhd:
        return 0
    box = tfhd[0]
    flags = int.from_bytes(buf[box.body + 1 : box.body + 4], "big")
    pos = box.body + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0) + (4 if flags & 0x08 else 0)
    return int(struct.unpack_from(">I", buf, pos)[0]) if flags & 0x10 else 0


def _trun_layout(buf: bytes | bytearray, trun: Box) -> tuple[int, int, int, int]:
    """(flags, sample count, offset of the first sample entry, bytes per entry) of a trun."""
    flags = int.from_bytes(buf[trun.body + 1 : trun.body + 4], "big")
    (count,) = struct.unpack_from(">I", buf, trun.body + 4)
    entries = trun.body + 8 + (4 if flags & 0x001 else 0) + (4 if flags & 0x004 else 0)
    per = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    return flags, count, entries, per


def _tfhd_defaults(buf: bytes | bytearray, traf: Box, trex: tuple[int, int]) -> tuple[int, int]:
    """(default sample duration, default sample flags) of a track fragment, trex as fallback."""
    tfhd = find(buf, (b"tfhd",), traf.body, traf.end)
    if not tfhd:
        raise TranscodeError("traf without tfhd")
    box = tfhd[0]
    flags = int.from_bytes(buf[box.body + 1 : box.body + 4], "big")
    pos = box.body + 8  # version/flags + track_ID
    duration, sample_flags = trex
    if flags & 0x01:
        pos += 8
    if flags & 0x02:
        pos += 4
    if flags & 0x08:
        (duration,) = struct.unpack_from(">I", buf, pos)
        pos += 4
    if flags & 0x10:
        pos += 4
    if flags & 0x20:
        (sample_flags,) = struct.unpack_from(">I", buf, pos)
    return duration, sample_flags


def present_at_decode_time(fragments: tuple[bytes, ...], init: bytes = b"") -> tuple[bytes, ...]:
    """Make the first presented sample's composition time equal its fragment's tfdt.

    With B-frames x264 starts decoding two frames before the first picture is shown, and
    ffmpeg writes that as positive composition offsets from a tfdt of 0, so the chunk would be
    *presented* from media_start + 2 frames: A/V out of sync by that much. CMAF's answer is a
    version-1 trun with signed offsets: subtract the encoder delay (the smallest presentation
    offset in the first fragment) from every offset, so presentation starts exactly at tfdt.
    Sizes do not change. Fragments without composition offsets come back unchanged.
    """
    trex = _trex_defaults(init) if init else (0, 0)
    shift: int | None = None
    out: list[bytes] = []
    for fragment in fragments:
        buf = bytearray(fragment)
        traf = find(buf, (b"moof", b"traf"))[0]
        default_duration, _ = _tfhd_defaults(buf, traf, trex)
        for trun in find(buf, (b"trun",), traf.body, traf.end):
            flags, count, entries, per = _trun_layout(buf, trun)
            if not flags & 0x800:
                continue
            signed = buf[trun.body] == 1
            cto_at = per - 4
            if shift is None:
                decode, earliest = 0, 0
                for i in range(count):
                    pos = entries + i * per
                    cto = struct.unpack_from(">i" if signed else ">I", buf, pos + cto_at)[0]
                    earliest = decode + cto if i == 0 else min(earliest, decode + cto)
                    duration = struct.unpack_from(">I", buf, pos)[0] if flags & 0x100 else default_duration
                    decode += duration
                shift = earliest
            buf[trun.body] = 1
            for i in range(count):
                pos = entries + i * per + cto_at
                cto = struct.unpack_from(">i" if signed else ">I", buf, pos)[0]
                struct.pack_into(">i", buf, pos, cto - shift)
        out.append(bytes(buf))
    return tuple(out)


@dataclass(frozen=True)
class Sample:
    duration: int
    size: int
    flags: int | None  # None: the fragment's default applies
    cto: int  # composition offset (0 without one)
    data: bytes


def samples(fragment: bytes, init: bytes = b"") -> list[Sample]:
    """The samples of a single-traf fragment (moof + mdat), with their bytes."""
    trex = _trex_defaults(init) if init else (0, 0)
    traf = find(fragment, (b"moof", b"traf"))[0]
    default_duration, _default_flags = _tfhd_defaults(fragment, traf, trex)
    default_size = _tfhd_default_size(fragment, traf)
    out: list[Sample] = []
    for trun in find(fragment, (b"trun",), traf.body, traf.end):
        flags, count, entries, per = _trun_layout(fragment, trun)
        signed = fragment[trun.body] == 1
        (data_offset,) = struct.unpack_from(">i", fragment, trun.body + 8) if flags & 0x001 else (0,)
        first_flags = struct.unpack_from(">I", fragment, trun.body + 12)[0] if flags & 0x004 else None
        pos = data_offset
        for n in range(count):
            at = entries + n * per
            duration, size, sflags, cto = default_duration, default_size, None, 0
            if flags & 0x100:
                (duration,) = struct.unpack_from(">I", fragment, at)
                at += 4
            if flags & 0x200:
                (size,) = struct.unpack_from(">I", fragment, at)
                at += 4
            if flags & 0x400:
                (sflags,) = struct.unpack_from(">I", fragment, at)
                at += 4
            elif n == 0 and first_flags is not None:
                sflags = first_flags
            if flags & 0x800:
                (cto,) = struct.unpack_from(">i" if signed else ">I", fragment, at)
            out.append(Sample(duration, size, sflags, cto, bytes(fragment[pos : pos + size])))
            pos += size
    return out


def build_fragment(items: list[Sample], decode_time: int, sequence: int, track_id: int = 1) -> bytes:
    """A moof + mdat from samples: tfhd default-base-is-moof, 64-bit tfdt, a trun with per-sample
    duration and size (and flags / signed composition offsets where any sample has them)."""
    if not items:
        raise TranscodeError("a fragment needs at least one sample")
    with_flags = any(x.flags is not None for x in items)
    with_cto = any(x.cto for x in items)
    tr_flags = 0x001 | 0x100 | 0x200 | (0x400 if with_flags else 0) | (0x800 if with_cto else 0)
    entries = bytearray()
    for x in items:
        entries += struct.pack(">II", x.duration, x.size)
        if with_flags:
            entries += struct.pack(">I", x.flags if x.flags is not None else 0)
        if with_cto:
            entries += struct.pack(">i", x.cto)
    mfhd = struct.pack(">I4sII", 16, b"mfhd", 0, sequence & 0xFFFFFFFF)
    tfhd = struct.pack(">I4sII", 16, b"tfhd", 0x020000, track_id)
    tfdt = struct.pack(">I4sIQ", 20, b"tfdt", 1 << 24, decode_time)
    trun_len = 8 + 4 + 4 + 4 + len(entries)
    traf_len = 8 + len(tfhd) + len(tfdt) + trun_len
    moof_len = 8 + len(mfhd) + traf_len
    trun = struct.pack(">I4sIIi", trun_len, b"trun", (1 if with_cto else 0) << 24 | tr_flags, len(items),
                       moof_len + 8) + bytes(entries)
    moof = struct.pack(">I4s", moof_len, b"moof") + mfhd + struct.pack(">I4s", traf_len, b"traf") + tfhd + tfdt + trun
    payload = b"".join(x.data for x in items)
    return moof + struct.pack(">I4s", 8 + len(payload), b"mdat") + payload


def slice_samples(fragment: bytes, start: int, count: int, init: bytes = b"") -> bytes:
    """Keep samples [start, start + count) of a fragment (same tfdt: the caller rebases it). Used to cut
    audio to the channel's frame grid: the encoder's priming and pre-roll frames in front, the flush
    frames at the end."""
    items = samples(fragment, init)
    if start < 0 or count <= 0 or start + count > len(items):
        raise TranscodeError(f"cannot keep samples {start}..{start + count} of an audio fragment with {len(items)}")
    seq_boxes = find(fragment, (b"moof", b"mfhd"))
    sequence = struct.unpack_from(">I", fragment, seq_boxes[0].body + 4)[0] if seq_boxes else 1
    return build_fragment(items[start : start + count], decode_time(fragment), sequence, _track_id(fragment))


def _track_id(fragment: bytes) -> int:
    tfhd = find(fragment, (b"moof", b"traf", b"tfhd"))
    return int(struct.unpack_from(">I", fragment, tfhd[0].body + 4)[0]) if tfhd else 1


def sequential_segment(fragments: tuple[bytes, ...], base: int, first_sequence: int, init: bytes = b"") -> bytes:
    """One CMAF media segment from fragments that were not cut from one stream (slate GOPs of several
    lengths): each tfdt is `base` plus the durations of the fragments before it."""
    if base < 0:
        raise TranscodeError(f"negative base decode time {base}")
    out = bytearray(struct.pack(">I4s", 8 + len(_STYP_PAYLOAD), STYP) + _STYP_PAYLOAD)
    t = base
    for i, frag in enumerate(fragments):
        out += _set_sequence(_set_tfdt_v1(frag, t), first_sequence + i)
        t += sum(x.duration for x in samples(frag, init))
    return bytes(out)


def normalize_init(init: bytes) -> bytes:
    """The init segment every chunk, slate and retry of a run shares, byte for byte: CMAF brands in
    ftyp; no bitrate figures (esds/btrt carry the *source* encoder's bitrate when audio is copied;
    0 means "not given", ISO/IEC 14496-1 7.2.6.6); and an AAC-LC AudioSpecificConfig in its plain
    2-byte form (ffmpeg's encoder appends an explicit "no SBR" extension, a copied encoder's usually
    does not), so copied and re-encoded audio of one channel share one header."""
    buf = bytearray()
    for b in iter_boxes(init):
        if b.type == b"ftyp":
            buf += struct.pack(">I4s", 8 + len(_FTYP_PAYLOAD), b"ftyp") + _FTYP_PAYLOAD
        else:
            buf += init[b.offset : b.end]
    path = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    for stsd in find(buf, path):
        for entry in iter_boxes(buf, stsd.body + 8, stsd.end):
            inner = entry.body + (28 if entry.type == b"mp4a" else 78)
            for child in iter_boxes(buf, inner, entry.end):
                if child.type == b"btrt":
                    buf[child.body + 4 : child.body + 12] = bytes(8)  # max and average bitrate
                elif child.type == b"esds":
                    new = _canonical_esds(buf, child)
                    grow = len(new) - child.size
                    # Every box enclosing the esds changes size with it (they all start before it).
                    parents = [find(buf, path[:n])[0] for n in range(1, len(path) + 1)] + [entry]
                    buf[child.offset : child.end] = new
                    for box in parents:
                        struct.pack_into(">I", buf, box.offset, box.size + grow)
                    break
            break
    return bytes(buf)


def _canonical_esds(buf: bytes | bytearray, esds: Box) -> bytes:
    dcd, asc, asc_size = _esds_config(buf, esds)
    config = bytes(buf[asc : asc + asc_size])
    aot = config[0] >> 3 if config else 0
    freq_index = ((config[0] & 0x07) << 1 | config[1] >> 7) if len(config) > 1 else 15
    if aot == 2 and freq_index != 15 and len(config) > 2:
        config = config[:2]  # AOT(5) freq(4) channels(4) GASpecificConfig(3): the whole LC config
    oti, stream = buf[dcd], buf[dcd + 1]

    def desc(tag: int, payload: bytes) -> bytes:
        n = len(payload)
        size = [0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F, n & 0x7F]
        return bytes([tag, *size]) + payload

    dec = desc(0x04, bytes([oti, stream]) + bytes(11) + desc(0x05, config))
    es = desc(0x03, struct.pack(">HB", 1, 0) + dec + desc(0x06, b"\x02"))
    return struct.pack(">I4sI", 12 + len(es), b"esds", 0) + es


def _descriptor(buf: bytes | bytearray, pos: int) -> tuple[int, int, int]:
    """(tag, payload offset, payload size) of an MPEG-4 descriptor (expandable size field)."""
    tag = buf[pos]
    pos += 1
    size = 0
    for _ in range(4):
        b = buf[pos]
        pos += 1
        size = (size << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return tag, pos, size


def _esds_config(buf: bytes | bytearray, esds: Box) -> tuple[int, int, int]:
    """(offset of the DecoderConfigDescriptor payload, offset of the AudioSpecificConfig, its size)."""
    tag, pos, _size = _descriptor(buf, esds.body + 4)  # ES_Descriptor after version/flags
    if tag != 0x03:
        raise TranscodeError("esds without an ES_Descriptor")
    flags = buf[pos + 2]
    pos += 3 + (2 if flags & 0x80 else 0)
    if flags & 0x40:
        pos += 1 + buf[pos]
    if flags & 0x20:
        pos += 2
    tag, dcd, _size = _descriptor(buf, pos)
    if tag != 0x04:
        raise TranscodeError("esds without a DecoderConfigDescriptor")
    tag, asc, asc_size = _descriptor(buf, dcd + 13)
    if tag != 0x05:
        raise TranscodeError("esds without a DecoderSpecificInfo")
    return dcd, asc, asc_size


def codecs(init: bytes) -> str:
    """RFC 6381 codec string of the (single) track, read from the bitstream configuration: avc1.PPCCLL
    from avcC (profile, constraint flags, level as encoded), mp4a.40.N from the AudioSpecificConfig."""
    stsd = find(init, (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"))
    if not stsd:
        raise TranscodeError("init segment without stsd")
    for entry in iter_boxes(init, stsd[0].body + 8, stsd[0].end):
        if entry.type in (b"avc1", b"avc3"):
            for child in iter_boxes(init, entry.body + 78, entry.end):
                if child.type == b"avcC":
                    p, c, lv = init[child.body + 1], init[child.body + 2], init[child.body + 3]
                    return f"{entry.type.decode()}.{p:02x}{c:02x}{lv:02x}"
        if entry.type == b"mp4a":
            for child in iter_boxes(init, entry.body + 28, entry.end):
                if child.type == b"esds":
                    dcd, asc, _size = _esds_config(init, child)
                    oti = init[dcd]
                    aot = init[asc] >> 3
                    if aot == 31:  # escape: 6 more bits
                        aot = 32 + (((init[asc] & 0x07) << 3) | (init[asc + 1] >> 5))
                    return f"mp4a.{oti:02x}.{aot}"
    raise TranscodeError("init segment carries neither avcC nor esds")


def drop_leading_samples(fragment: bytes, count: int) -> bytes:
    """Remove the first `count` samples of a single-trun fragment (moof + mdat).

    Used for the AAC priming frame. Needs per-sample sizes in the trun (ffmpeg writes them for
    audio); sizes, the trun's data offset and the mdat shrink accordingly.
    """
    if count <= 0:
        return fragment
    truns = find(fragment, (b"moof", b"traf", b"trun"))
    if len(truns) != 1:
        raise TranscodeError(f"expected one trun in the audio fragment, found {len(truns)}")
    trun = truns[0]
    flags = int.from_bytes(fragment[trun.body + 1 : trun.body + 4], "big")
    (samples,) = struct.unpack_from(">I", fragment, trun.body + 4)
    if not flags & 0x200 or not flags & 0x001 or samples <= count:
        raise TranscodeError("audio fragment lacks per-sample sizes or has too few samples to trim")
    header = 8 + 4 + (4 if flags & 0x004 else 0)  # version/flags, count, data offset, first flags
    per = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    entries = trun.body + header
    size_at = 4 if flags & 0x100 else 0
    dropped = sum(
        struct.unpack_from(">I", fragment, entries + i * per + size_at)[0] for i in range(count)
    )
    removed = count * per
    (data_offset,) = struct.unpack_from(">i", fragment, trun.body + 8)
    out = bytearray(fragment[: entries] + fragment[entries + removed :])
    struct.pack_into(">I", out, trun.body + 4, samples - count)
    struct.pack_into(">i", out, trun.body + 8, data_offset - removed)
    # Shrink every enclosing box (moof, traf, trun all start before the entries).
    for path in ((b"moof",), (b"moof", b"traf"), (b"moof", b"traf", b"trun")):
        box = find(fragment, path)[0]
        struct.pack_into(">I", out, box.offset, box.size - removed)
    mdat = next(b for b in iter_boxes(out) if b.type == b"mdat")
    payload_start = data_offset - removed  # relative to moof start (offset 0)
    if payload_start != mdat.body:
        raise TranscodeError("audio trun data does not start at the mdat payload")
    body = out[mdat.body + dropped : mdat.end]
    return bytes(out[: mdat.offset] + struct.pack(">I4s", 8 + len(body), b"mdat") + body)
