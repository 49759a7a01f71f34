"""SCTE-35 from the source through the pipeline on moto: in-band cues in the chunks become ad breaks (one
per event however often the encoder resends it), force an IDR where they splice inside a chunk, and are
marked on the right segment with the encoder's cue verbatim; the source's return and cancel are honoured;
bad cues are dropped or refused with the reason while the chunk plays. And an encoder's own HLS, cue tags
included, is a source.

The fake probe reads the chunk's JSON body; the fake section reader here takes the body's "scte35" list
(what `media.scte35.read_ts` finds in a real TS, which tests/unit/media/test_media_source_cues.py covers)
and decodes each section with the real decoder, so a corrupt one is dropped the same way.
"""

from __future__ import annotations

import json
from typing import Any

import m3u8
import pytest
import threefive
from pipeline_harness import TS_START, Pipeline

from chalicelib.errors import ValidationError
from chalicelib.media import scte35
from chalicelib.media.scte35 import TsCue, TsScan
from chalicelib.records import ChannelRecord
from tests.support.scte35_ts import with_adjustment as adjusted

CH = "news"


def fake_scan(path: str, ext: str) -> TsScan | None:
    with open(path, "rb") as f:
        doc = json.loads(f.read())
    cues, dropped = [], []
    for c in doc.get("scte35", []):
        try:
            cues.append(TsCue(scte35.decode(bytes.fromhex(c["hex"])), 0x86, c.get("at")))
        except ValidationError as e:
            dropped.append(str(e))
    return TsScan(tuple(cues), tuple(dropped))


@pytest.fixture
def source(pipe: Pipeline) -> Pipeline:
    pipe.deps.scan_cues = fake_scan
    pipe.channel(CH)
    return pipe


def pts(seq: int, into: float = 0.0) -> float:
    """The source PTS (seconds) of chunk `seq`'s first frame plus `into`: the run's media time is 2 * seq + into."""
    return TS_START + seq * 2.0 + into


def chunk(seq: int, *cues: scte35.Cue | bytes) -> bytes:
    sections = [{"hex": (c.data if isinstance(c, scte35.Cue) else c).hex()} for c in cues]
    return json.dumps({"start": pts(seq), "duration": 2.0, "scte35": sections}).encode()


def live(pipe: Pipeline, upto: int, cues: dict[int, list[scte35.Cue | bytes]] | None = None, first: int = 0) -> None:
    for seq in range(first, upto):
        pipe.clock.advance(2)
        assert pipe.push(CH, seq, body=chunk(seq, *(cues or {}).get(seq, []))) == ["accepted"]
        pipe.pump()


def breaks(pipe: Pipeline) -> list[dict[str, Any]]:
    return pipe.deps.store.ad_break_items(CH)


def dvr(pipe: Pipeline) -> m3u8.M3U8:
    return m3u8.loads(pipe.origin(f"{CH}/360p/dvr.m3u8"))


def by_uri(pipe: Pipeline) -> dict[str, m3u8.Segment]:
    return {s.uri: s for s in dvr(pipe).segments}


def test_an_in_band_splice_out_becomes_one_break_marked_on_its_segment_with_the_encoders_cue(source: Pipeline) -> None:
    out = scte35.splice_insert(77, pts(5), 6.0)  # splice at chunk 5's first frame, 6 s: in at chunk 8
    # Sent three times ahead of its splice time, as encoders do: one break.
    live(source, 10, {2: [out], 3: [out], 4: [out]})
    [item] = breaks(source)
    assert (item["source"], item["id"], int(item["splice_event_id"]), float(item["media_time"])) == (
        "source", "src1-77-10000", 77, 10.0)
    assert item["scte35_out"] == out.base64 and item["scte_type"] == "SPLICE_INSERT"
    segs = by_uri(source)
    assert segs["r1/00000005.m4s"].cue_out_start and segs["r1/00000008.m4s"].cue_in
    assert scte35.decode(segs["r1/00000005.m4s"].oatcls_scte35).data == out.data  # verbatim
    [dr_out, dr_in] = [d for s in dvr(source).segments for d in (s.dateranges or [])]
    assert dr_out.scte35_out == out.hex and dr_out.id == dr_in.id == "src1-77-10000"
    assert scte35.decode(dr_in.scte35_in).out_of_network is False
    mpd = source.origin(f"{CH}/manifest.mpd")
    assert out.base64 in mpd and 'presentationTime="900000"' in mpd


def test_a_splice_inside_a_chunk_forces_an_idr_there_and_the_break_starts_at_the_next_boundary(
        source: Pipeline) -> None:
    out = scte35.time_signal(pts(5, 1.2), "provider_po_start", 4.0, 9)
    live(source, 9, {3: [out]})
    job5 = next(j for j in source.transcoder.jobs if j.seq == 5)
    assert job5.splice_points == pytest.approx((1.2,))
    assert by_uri(source)["r1/00000006.m4s"].cue_out_start
    assert not by_uri(source)["r1/00000005.m4s"].cue_out


def test_the_sources_return_ends_the_break_early_with_its_in_cue(source: Pipeline) -> None:
    out = scte35.splice_insert(40, pts(3), 30.0)
    back = scte35.splice_insert(40, pts(6), None, out_of_network=False)
    live(source, 9, {2: [out], 6: [back], 7: [back]})
    [item] = breaks(source)
    assert item["state"] == "returned" and float(item["return_media"]) == 12.0 and item["scte35_in"] == back.base64
    segs = by_uri(source)
    assert segs["r1/00000006.m4s"].cue_in and not segs["r1/00000007.m4s"].cue_out
    [_, dr_in] = [d for s in dvr(source).segments for d in (s.dateranges or [])]
    assert dr_in.scte35_in == back.hex and dr_in.duration == 6.0
    assert back.base64 in source.origin(f"{CH}/manifest.mpd")  # the in-cue's own DASH Event


def test_a_cancel_before_the_splice_removes_the_break(source: Pipeline) -> None:
    out = scte35.splice_insert(12, pts(8), 4.0)
    live(source, 10, {2: [out], 4: [scte35.cancel(12)]})
    [item] = breaks(source)
    assert item["state"] == "cancelled"
    text = source.origin(f"{CH}/360p/dvr.m3u8")
    assert "CUE" not in text and "SCTE35" not in text


def test_only_the_channels_scte_filter_types_become_breaks(source: Pipeline) -> None:
    source.table.update_item(Key={"pk": f"CH#{CH}", "sk": "META"}, UpdateExpression="SET scte_filter = :f",
                             ExpressionAttributeValues={":f": ["PROVIDER_ADVERTISEMENT"]})
    po = scte35.time_signal(pts(4), "provider_po_start", 4.0, 1)
    ad = scte35.time_signal(pts(6), "provider_ad_start", 2.0, 2)
    live(source, 9, {2: [po, ad]})
    assert [int(b["splice_event_id"]) for b in breaks(source)] == [2]


def test_a_corrupt_cue_is_dropped_and_counted_and_its_chunk_still_plays(source: Pipeline) -> None:
    good = scte35.splice_insert(3, pts(6), 2.0)
    bad = bytearray(scte35.splice_insert(4, pts(4), 2.0).data)
    bad[15] ^= 0xFF  # the CRC-32 no longer holds
    live(source, 8, {2: [bytes(bad), good]})
    assert "r1/00000002.m4s" in by_uri(source)
    assert [int(b["splice_event_id"]) for b in breaks(source)] == [3]
    meta = source.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"]
    assert int(meta["dropped_cues"]) == 1 and "CRC-32 mismatch" in meta["dropped_cues_last"]
    assert int(meta.get("errors", 0)) == 0


@pytest.mark.parametrize(("at", "why"), [
    (pts(1), "is before the chunk that carries it"),
    (pts(4) + 7300.0, "is more than the DVR window ahead"),  # the channel keeps 7200 s
])
def test_a_cue_splicing_in_the_past_or_beyond_the_dvr_window_is_refused_into_the_error_log(
        source: Pipeline, at: float, why: str) -> None:
    live(source, 6, {4: [scte35.splice_insert(5, at, 2.0)]})
    assert breaks(source) == []
    meta = ChannelRecord.from_item(source.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"])
    assert meta.errors == 1 and why in meta.error and "event 5" in meta.error
    assert "r1/00000004.m4s" in by_uri(source)


def combined(*cues: scte35.Cue) -> scte35.Cue:
    """One time_signal carrying the segmentation descriptors of `cues` in order (as playout systems send
    a PO end and the next PO start in one section)."""
    tf = threefive.Cue(cues[0].base64)
    for c in cues[1:]:
        tf.descriptors += threefive.Cue(c.base64).descriptors
    tf.encode()
    return scte35.decode(bytes(tf.bites))


def test_a_time_signal_with_several_descriptors_closes_one_avail_and_opens_the_next(source: Pipeline) -> None:
    # Given a PO of 6 s from chunk 3, then at chunk 4 one time_signal with the PO's end, an ad end for an
    # event that never was a break, and the next PO start (4 s)
    first = scte35.time_signal(pts(3), "provider_po_start", 6.0, 1)
    both = combined(scte35.time_signal(pts(4), "provider_po_end", None, 1),
                    scte35.time_signal(pts(4), "provider_ad_end", None, 9),
                    scte35.time_signal(pts(4), "provider_po_start", 4.0, 2))
    assert [(s.event_id, s.type_id) for s in both.segmentations] == [(1, 0x35), (9, 0x31), (2, 0x34)]
    live(source, 10, {2: [first], 4: [both]})
    # Then the first PO returns early at chunk 4 with that section as its in-cue, the next opens there
    items = sorted(breaks(source), key=lambda b: float(b["media_time"]))
    assert [(b["id"], b["state"], b.get("return_media")) for b in items] == [
        ("src1-1-6000", "returned", 8.0), ("src1-2-8000", "scheduled", None)]
    assert items[0]["scte35_in"] == both.base64 and items[1]["scte35_out"] == both.base64
    assert items[1]["scte_type"] == "PROVIDER_PLACEMENT_OPPORTUNITY" and float(items[1]["duration"]) == 4.0
    meta = ChannelRecord.from_item(source.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"])
    assert meta.errors == 0  # the ad end of event 9 closes nothing, and is no error
    segs = by_uri(source)
    assert segs["r1/00000003.m4s"].cue_out_start and segs["r1/00000004.m4s"].cue_out_start
    assert segs["r1/00000006.m4s"].cue_in and not segs["r1/00000005.m4s"].cue_in
    ranges = {d.id: d for s in dvr(source).segments for d in (s.dateranges or []) if d.end_date or d.duration}
    assert ranges["src1-1-6000"].duration == 2.0 and ranges["src1-1-6000"].scte35_in == both.hex
    # the second break's own return (at its planned end) is the partner of its opening descriptor
    back = scte35.decode(ranges["src1-2-8000"].scte35_in)
    assert (back.command, back.segmentation_type_id, back.event_id) == ("time_signal", 0x35, 2)


# --- the encoder's clock: pts_adjustment and the 33-bit wrap ------------------------------------


def with_adjustment(cue: scte35.Cue, adjustment_ticks: int) -> scte35.Cue:
    return scte35.decode(adjusted(cue.base64, adjustment_ticks))


def test_a_source_whose_pts_wraps_mid_run_with_pts_adjusted_cues_splices_on_the_right_segments(
        source: Pipeline) -> None:
    # Given a source whose 33-bit PTS counter wraps between chunks 2 and 3 (chunk 2 starts 1 s before it),
    # and cues whose splice_time + pts_adjustment themselves wrap.
    wrap = scte35.PTS_WRAP
    first = wrap - 5 * scte35.TICKS_PER_SECOND

    def ticks(seq: int, into: float = 0.0) -> int:
        return (first + round((seq * 2.0 + into) * scte35.TICKS_PER_SECOND)) % wrap

    adj = 30_000 * scte35.TICKS_PER_SECOND
    inside = with_adjustment(scte35.splice_insert(61, ticks(2, 1.2) / scte35.TICKS_PER_SECOND, 2.0), adj)
    out = with_adjustment(scte35.splice_insert(62, ticks(5) / scte35.TICKS_PER_SECOND, 10.0), adj)
    back = with_adjustment(scte35.splice_insert(62, ticks(7) / scte35.TICKS_PER_SECOND, None,
                                                out_of_network=False), adj)
    assert inside.pts_ticks == ticks(2, 1.2) and out.pts_ticks == ticks(5)  # decode applies the adjustment
    assert threefive.Cue(out.base64).info_section.pts_adjustment == pytest.approx(30_000.0)
    plan: dict[int, list[scte35.Cue]] = {1: [inside, out], 2: [out], 4: [out], 6: [back]}
    # When the chunks arrive live
    for seq in range(10):
        source.clock.advance(2)
        sections = [{"hex": c.data.hex()} for c in plan.get(seq, [])]
        body = json.dumps({"start": ticks(seq) / scte35.TICKS_PER_SECOND, "duration": 2.0,
                           "scte35": sections}).encode()
        assert source.push(CH, seq, body=body) == ["accepted"]
        source.pump()
    # Then each cue is one break at its media time on the run's clock, whatever the wrap
    items = sorted(breaks(source), key=lambda b: float(b["media_time"]))
    assert [(b["id"], float(b["media_time"]), b["state"]) for b in items] == [
        ("src1-61-5200", 5.2, "scheduled"), ("src1-62-10000", 10.0, "returned")]
    assert items[1]["scte35_out"] == out.base64 and items[1]["scte35_in"] == back.base64  # verbatim
    assert float(items[1]["return_media"]) == 14.0
    # the splice 1.2 s into the chunk that spans the wrap forces an IDR there
    job2 = next(j for j in source.transcoder.jobs if j.seq == 2)
    assert job2.splice_points == pytest.approx((1.2,))
    segs = by_uri(source)
    assert segs["r1/00000003.m4s"].cue_out_start and segs["r1/00000004.m4s"].cue_in
    assert segs["r1/00000005.m4s"].cue_out_start and segs["r1/00000007.m4s"].cue_in
    assert not any(segs[f"r1/{i:08d}.m4s"].cue_out_start for i in (0, 1, 2, 6, 8, 9))
    assert scte35.decode(segs["r1/00000005.m4s"].oatcls_scte35).data == out.data
    meta = ChannelRecord.from_item(source.table.get_item(Key={"pk": f"CH#{CH}", "sk": "META"})["Item"])
    assert meta.errors == 0


# --- an encoder's own HLS ------------------------------------------------------------------------


def encoder_playlist(first: int, last: int, cues: dict[int, list[str]]) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for seq in range(first, last + 1):
        lines += cues.get(seq, [])
        lines += ["#EXTINF:2.000,", f"seg{seq:05d}.ts"]
    return ("\n".join(lines) + "\n").encode()


def test_an_encoders_hls_in_the_ingest_bucket_is_a_source_with_its_cue_tags(source: Pipeline) -> None:
    out = scte35.splice_insert(500, 99.0, 6.0)  # the encoder's own clock: placed by the tag's segment
    cues = {3: [f"#EXT-OATCLS-SCTE35:{out.base64}", "#EXT-X-CUE-OUT:6.000"], 6: ["#EXT-X-CUE-IN"]}
    bucket = source.deps.settings.ingest_bucket
    for seq in range(8):
        source.clock.advance(2)
        body = json.dumps({"start": pts(seq), "duration": 2.0}).encode()
        seg = source.upload(CH, seq, body=body, key=f"{CH}/hls/seg{seq:05d}.ts")
        assert source.ingest(seg) == ["segment: ingested when its playlist lists it"]
        playlist = encoder_playlist(max(0, seq - 4), seq, cues)
        result = source.ingest(source.upload(CH, 0, body=playlist, key=f"{CH}/hls/index.m3u8"))
        assert f"{seq}: accepted" in result[0], result
        source.pump()
    assert source.listed(CH, "360p") == [f"r1/{i:08d}.m4s" for i in range(8)]
    [item] = breaks(source)
    assert (float(item["media_time"]), item["scte35_out"], item["source"]) == (6.0, out.base64, "source")
    segs = by_uri(source)
    assert segs["r1/00000003.m4s"].cue_out_start and segs["r1/00000006.m4s"].cue_in
    assert bucket and source.ingest(source.upload(CH, 0, body=b"#EXTM3U\n", key=f"{CH}/hls/x.mp4"))[0].startswith(
        "rejected:")
