"""MPEG-TS with in-band SCTE-35, made the way a playout system's encoder makes it: threefive's
SuperKabuki (the `scte35inject` tool) adds an SCTE-35 PID (stream_type 0x86) to the PMT and writes
each cue as a section packet at the first IDR at or after its insert time.

SuperKabuki reads its options from the command line and writes its output in blocks of 530 packets
(a short chunk would come out empty), so `inject` drives it with argv and writes every packet itself.
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import threefive
from threefive import stuff as _tf_stuff
from threefive.superkabuki import SuperKabuki

SCTE35_PID = 0x86
PTS_WRAP = 1 << 33


class _Injector(SuperKabuki):  # type: ignore[misc]
    def encode(self) -> None:
        with open(self.outfile, "wb") as out:
            for pkt in self.iter_pkts():
                pid = self._parse_pid(pkt[1], pkt[2])
                pkt = self._parse_by_pid(pkt, pid)
                if pkt:
                    cues = io.BytesIO()
                    self.iframe_action(pkt, pid, cues)  # the cue packet (if due) before the IDR's packet
                    out.write(cues.getvalue())
                    out.write(pkt)


def inject(src: Path, out: Path, cues: Sequence[tuple[float, str]], pid: int = SCTE35_PID) -> Path:
    """Copy `src` to `out` with each (insert PTS in seconds, base64 cue) written on an SCTE-35 PID; the
    cue goes in at the first IDR whose PTS is at or after the insert time, which must not be before the
    stream's first IDR (SuperKabuki only loads cues that are still ahead)."""
    sidecar = out.with_suffix(".sidecar.txt")
    sidecar.write_text("".join(f"{pts},{cue}\n" for pts, cue in cues))
    argv = sys.argv
    sys.argv = ["scte35inject", "-i", str(src), "-o", str(out), "-s", str(sidecar), "-p", str(pid)]
    stderr = _tf_stuff.stderr
    try:
        _tf_stuff.stderr = io.StringIO()  # it reports every insertion on the stderr it bound at import
        _Injector().encode()
    finally:
        sys.argv, _tf_stuff.stderr = argv, stderr
        sidecar.unlink(missing_ok=True)
    data = out.read_bytes()
    for _, cue in cues:
        if base64.b64decode(cue) not in data:
            raise ValueError(f"cue {cue[:24]}... was not injected: its insert time is after every IDR of {src.name}")
    return out


def corrupt_cue(data: bytes, cue: bytes) -> bytes:
    """`data` with one byte inside the first copy of section `cue` flipped: its CRC-32 no longer holds."""
    i = data.find(cue)
    if i < 0:
        raise ValueError("the cue is not in the stream")
    mangled = bytearray(data)
    mangled[i + len(cue) // 2] ^= 0xFF
    return bytes(mangled)


def with_adjustment(cue_b64: str, adjustment_ticks: int) -> bytes:
    """The section `cue_b64` as an encoder whose splice_time runs `adjustment_ticks` behind the stream
    writes it: pts_time lowered by that much (mod 2**33) and pts_adjustment carrying it (SCTE-35 9.6),
    re-encoded (CRC included) by threefive. Same splice point, different bytes."""
    tf = threefive.Cue(cue_b64)
    ticks = round(tf.command.pts_time * 90_000)
    tf.command.pts_time = ((ticks - adjustment_ticks) % PTS_WRAP) / 90_000
    tf.info_section.pts_adjustment = adjustment_ticks / 90_000
    tf.encode()
    return bytes(tf.bites)
