// SCTE-35 splice_info_section decoding, just enough for a player page to tell an ad break's
// out from its in: splice_insert (out_of_network_indicator, break_duration) and time_signal with
// segmentation descriptors (type ids in CableLabs' start/end pairs). No CRC check: the packager
// signs its sections with threefive, and a page that refused a bad CRC would hide the marker.

// Segmentation types that open an avail; type + 1 closes it (SCTE 35 table 23).
const OUT_TYPES = new Set([0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3a, 0x3c, 0x3e, 0x44, 0x46]);

export function bytesFrom(data) {
  if (data == null) return null;
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const text = String(data).trim();
  if (!text) return null;
  if (/^0x[0-9a-f]+$/i.test(text)) {
    const hex = text.slice(2);
    const out = new Uint8Array(hex.length >> 1);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }
  try {
    const bin = atob(text.replace(/\s+/g, ""));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch (e) {
    return null;
  }
}

class Bits {
  constructor(bytes) { this.b = bytes; this.pos = 0; }
  read(n) {
    // 33-bit PTS values exceed 32-bit integer maths: accumulate with multiplication.
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.b[this.pos >> 3];
      if (byte === undefined) throw new RangeError("splice_info_section truncated");
      v = v * 2 + ((byte >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return v;
  }
  skip(n) { this.pos += n; }
  get byte() { return this.pos >> 3; }
}

function spliceTime(r) {
  if (r.read(1)) { r.skip(6); return r.read(33) / 90000; }
  r.skip(7);
  return null;
}

function segmentationDescriptor(r, end) {
  const d = { eventId: r.read(32), cancel: !!r.read(1) };
  r.skip(7);
  if (d.cancel) return d;
  const programFlag = r.read(1), durationFlag = r.read(1), notRestricted = r.read(1);
  r.skip(5);
  void notRestricted;
  if (!programFlag) { const n = r.read(8); r.skip(n * 48); }
  if (durationFlag) d.duration = r.read(40) / 90000;
  r.read(8); // upid type
  r.skip(r.read(8) * 8);
  d.typeId = r.read(8);
  d.segmentNum = r.read(8);
  d.segmentsExpected = r.read(8);
  d.kind = OUT_TYPES.has(d.typeId) ? "out" : OUT_TYPES.has(d.typeId - 1) ? "in" : "other";
  r.pos = end * 8;
  return d;
}

// -> {command, spliceEventId, cancel, kind: "out"|"in"|"other", duration (s|null), pts (s|null),
//     autoReturn, segmentation: [...]} or null when the bytes are not a splice_info_section.
export function decode(data) {
  const bytes = bytesFrom(data);
  if (!bytes || bytes.length < 14 || bytes[0] !== 0xfc) return null;
  try {
    const r = new Bits(bytes);
    r.skip(8 + 1 + 1 + 2 + 12 + 8); // table_id, syntax, private, sap, section_length, protocol_version
    if (r.read(1)) return { command: "encrypted", kind: "other", segmentation: [] };
    r.skip(6);
    const ptsAdjustment = r.read(33) / 90000;
    r.skip(8 + 12);
    const commandLength = r.read(12);
    const type = r.read(8);
    const start = r.byte;
    const out = { command: "other", commandType: type, spliceEventId: null, cancel: false, kind: "other",
      duration: null, pts: null, autoReturn: null, ptsAdjustment, segmentation: [] };
    if (type === 0x05) {
      out.command = "splice_insert";
      out.spliceEventId = r.read(32);
      out.cancel = !!r.read(1);
      r.skip(7);
      if (!out.cancel) {
        const outOfNetwork = r.read(1), program = r.read(1), hasDuration = r.read(1), immediate = r.read(1);
        r.skip(4);
        if (program && !immediate) out.pts = spliceTime(r);
        if (!program) {
          const n = r.read(8);
          for (let i = 0; i < n; i++) { r.skip(8); if (!immediate) spliceTime(r); }
        }
        if (hasDuration) { out.autoReturn = !!r.read(1); r.skip(6); out.duration = r.read(33) / 90000; }
        out.kind = outOfNetwork ? "out" : "in";
      }
    } else if (type === 0x06) {
      out.command = "time_signal";
      out.pts = spliceTime(r);
    } else if (type === 0x00) {
      out.command = "splice_null";
    }
    r.pos = (start + (commandLength === 0xfff ? 0 : commandLength)) * 8;
    if (commandLength !== 0xfff && r.byte + 2 <= bytes.length) {
      const loop = r.read(16);
      const loopEnd = r.byte + loop;
      while (r.byte + 2 <= loopEnd) {
        const tag = r.read(8), len = r.read(8);
        const end = r.byte + len;
        if (tag === 0x02 && len >= 9) {
          r.skip(32); // identifier "CUEI"
          out.segmentation.push(segmentationDescriptor(r, end));
        }
        r.pos = end * 8;
      }
    }
    if (out.command === "time_signal") {
      const seg = out.segmentation.find((s) => s.kind === "out" || s.kind === "in");
      if (seg) {
        out.kind = seg.kind;
        out.spliceEventId = seg.eventId;
        out.cancel = seg.cancel;
        if (seg.duration != null) out.duration = seg.duration;
      }
    }
    return out;
  } catch (e) {
    return null;
  }
}
