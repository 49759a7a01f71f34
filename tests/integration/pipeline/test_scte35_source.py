"""Issue #11 end to end on the emulated stack: a TS source with in-band SCTE-35 (cues written into the
chunks by threefive, as a playout system's encoder carries them on a stream_type 0x86 PID) pushed in real
time through the deployed Lambdas, real ffmpeg.

The breaks appear on the right segment in every HLS dialect and in the MPD (both EventStream schemes);
every cue the packager emits decodes with threefive to the source's fields (the source's own bytes for
its cues, ours for the returns it did not send); a repeated cue is one break; a splice inside a chunk
forces an IDR there; a corrupt cue is dropped and counted while its chunk plays; a cue splicing in the
past is refused with the reason in the channel's error log.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import m3u8
import pytest
import threefive

from chalicelib import records, root
from chalicelib.media import scte35
from chalicelib.media.ladder import TEST_LADDER
from tests.support.cued_source import TICKS, first_pts, make_chunks, upload_live, with_cues
from tests.support.scte35_ts import corrupt_cue, with_adjustment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CID = "itest-scte"
CHUNKS = 20
NS = {"d": "urn:mpeg:dash:schema:mpd:2011", "s": "http://www.scte.org/schemas/35/2016"}


def put_channel(table: str, cid: str, **fields: Any) -> None:
    # Exact listings are read after the push ends (the channel stays RUNNING): no input-loss slate after it.
    fields.setdefault("input_loss_wait", -1.0)
    rec = records.ChannelRecord(id=cid, state=records.RUNNING, ladder="test", started_at=records.iso(records.utcnow()),
                                **fields)
    item = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in rec.to_item().items()}
    boto3.resource("dynamodb").Table(table).put_item(Item=item)


def meta(table: str) -> dict[str, Any]:
    return dict(boto3.resource("dynamodb").Table(table).get_item(Key={"pk": f"CH#{CID}", "sk": "META"})["Item"])


def origin_text(boto: Callable[[str], Any], bucket: str, key: str) -> str:
    try:
        return str(boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    except boto("s3").exceptions.NoSuchKey:
        return ""


@pytest.fixture(scope="module")
def source(deployed: Any, boto: Callable[[str], Any], wait_for: Callable[..., Any],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("scte-source")
    plain = make_chunks(work / "plain", CHUNKS * 2)
    assert len(plain) == CHUNKS
    p = [first_pts(c) for c in plain]  # each chunk's first PTS: where a splice on its boundary points
    # 6 s from chunk 5: in at chunk 8; the encoder's splice_time is 3 s ahead of the stream and its
    # pts_adjustment (2**33 - 3 s) brings it back across the 33-bit wrap.
    a = scte35.decode(with_adjustment(scte35.splice_insert(1001, p[5] / TICKS, 6.0).base64, (1 << 33) - 3 * TICKS))
    b = scte35.time_signal(p[10] / TICKS, "provider_ad_start", 20.0, 2002)  # 20 s planned from chunk 10 ...
    b_end = scte35.time_signal(p[13] / TICKS, "provider_ad_end", None, 2002)  # ... the source returns at 13
    c = scte35.splice_insert(5005, p[16] / TICKS + 1.0, 2.0)  # splices 1 s into chunk 16
    lost = scte35.splice_insert(3003, p[15] / TICKS, 2.0)  # arrives corrupt
    stale = scte35.splice_insert(4004, p[1] / TICKS, 2.0)  # splices at chunk 1, sent in chunk 14
    plan = {2: [a], 3: [a], 4: [a], 8: [b], 9: [b], 6: [lost], 12: [b_end], 14: [stale], 15: [c]}
    cued = with_cues(plain, plan, work / "cued",
                     mangle=lambda seq, data: corrupt_cue(data, lost.data) if seq == 6 else data)
    # A DASH Period per avail from the start (MediaTailor's multi-period): Periods are cut as segments are
    # first listed, never after.
    put_channel(deployed.table_name, CID, marker_style="both", dash_period_triggers="avails")
    upload_live(boto("s3"), deployed.ingest_bucket, CID, cued)
    want = [f"r1/{i:08d}.m4s" for i in range(CHUNKS)]

    def all_listed() -> bool:
        return all([s.uri for s in m3u8.loads(origin_text(boto, deployed.origin_bucket, f"{CID}/{r}/dvr.m3u8")
                                               or "#EXTM3U\n").segments] == want for r in TEST_LADDER.names)

    wait_for(all_listed, timeout=600, interval=2, what=f"all {CHUNKS} cued chunks in every dvr playlist")
    root.reset()
    yield {"a": a, "b": b, "b_end": b_end, "c": c, "pts": p, "dep": deployed}


def republish(style: str, **fields: Any) -> None:
    """Switch the channel's marker settings and render it again, forced (what PATCH /channels does)."""
    from chalicelib.pipeline import deps, publish

    d = deps.default()
    changes = {"marker_style": style, **fields}
    names = {f"#f{i}": k for i, k in enumerate(changes)}
    values = {f":v{i}": v for i, v in enumerate(changes.values())}
    boto3.resource("dynamodb").Table(d.settings.table_name).update_item(
        Key={"pk": f"CH#{CID}", "sk": "META"}, UpdateExpression="SET " + ", ".join(f"{n} = {v}" for n, v in zip(
            names, values, strict=True)), ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    publish.reset_caches()
    publish.package(CID, d, reasons=[f"marker style {style}"], force=True)


def playlist(boto: Callable[[str], Any], src: dict[str, Any]) -> tuple[str, dict[str, m3u8.Segment]]:
    text = origin_text(boto, src["dep"].origin_bucket, f"{CID}/360p/dvr.m3u8")
    return text, {s.uri: s for s in m3u8.loads(text).segments}


def media(seq: int) -> float:
    return seq * 2.0


def test_repeated_cues_make_one_break_each_and_bad_cues_never_cost_a_chunk(source: dict[str, Any]) -> None:
    from chalicelib.pipeline import deps

    items = {int(b["splice_event_id"]): b for b in deps.default().store.ad_break_items(CID)}
    assert sorted(items) == [1001, 2002, 5005]  # 1001 was sent three times; 3003 corrupt; 4004 refused
    assert all(b["source"] == "source" for b in items.values())
    assert float(items[1001]["media_time"]) == media(5) and items[1001]["scte35_out"] == source["a"].base64
    assert items[2002]["state"] == "returned" and float(items[2002]["return_media"]) == media(13)
    m = meta(source["dep"].table_name)
    assert int(m["dropped_cues"]) == 1 and "CRC-32" in m["dropped_cues_last"]
    assert int(m["errors"]) == 1 and "event 4004" in m["error"] and "before the chunk that carries it" in m["error"]


def test_a_splice_inside_a_chunk_gets_an_idr_and_the_break_starts_at_the_next_boundary(
        source: dict[str, Any], boto: Callable[[str], Any]) -> None:
    from chalicelib.pipeline import deps

    seg16 = deps.default().store.chunk(CID, 1, 16)
    assert seg16 is not None
    for v in TEST_LADDER.video:
        idrs = seg16[f"ifr_{v.name}"]
        assert len(idrs) == 2, (v.name, idrs)  # the chunk's own IDR and the forced one 1 s in
        assert int(idrs[0][2]) == TICKS  # the first IDR's GOP lasts exactly the 1 s up to the splice
    _, segs = playlist(boto, source)
    assert segs["r1/00000017.m4s"].cue_out_start and not segs["r1/00000016.m4s"].cue_out


def decoded(cue: str) -> threefive.Cue:
    return threefive.Cue(cue)


@pytest.mark.parametrize("style", ["both", "daterange", "elemental", "scte35_enhanced", "interstitials"])
def test_every_dialect_marks_the_source_breaks_on_their_segments_with_the_sources_cues(
        source: dict[str, Any], boto: Callable[[str], Any], style: str) -> None:
    extra = {"ad_asset_uri": "/origin/ads/ad-6s/index.m3u8"} if style == "interstitials" else {}
    republish(style, **extra)
    text, segs = playlist(boto, source)
    a, b, b_end = source["a"], source["b"], source["b_end"]
    if style in ("both", "elemental", "scte35_enhanced"):
        outs = [s.uri for s in m3u8.loads(text).segments if s.cue_out_start]
        ins = [s.uri for s in m3u8.loads(text).segments if s.cue_in]
        assert outs == ["r1/00000005.m4s", "r1/00000010.m4s", "r1/00000017.m4s"], style
        assert ins == ["r1/00000008.m4s", "r1/00000013.m4s", "r1/00000018.m4s"], style  # B: the source's return
        assert not segs["r1/00000014.m4s"].cue_out  # B returned at 13, 7 s before its planned end
    if style in ("both", "scte35_enhanced"):
        assert scte35.decode(segs["r1/00000005.m4s"].oatcls_scte35).data == a.data
        assert scte35.decode(segs["r1/00000011.m4s"].scte35).data == b.data  # CUE-OUT-CONT carries the cue
        assert scte35.decode(segs["r1/00000013.m4s"].oatcls_scte35).data == b_end.data
    if style == "elemental":
        assert "#EXT-X-CUE-OUT:6.000" in text and "#EXT-X-CUE-OUT-CONT:2.000/6" in text and "SCTE35" not in text
    ranges = {(d.id, d.end_date is not None): d for s in m3u8.loads(text).segments for d in (s.dateranges or [])}
    if style in ("both", "daterange"):
        a_out, a_in = ranges[("src1-1001-10000", False)], ranges[("src1-1001-10000", True)]
        ta = decoded(a_out.scte35_out)
        assert bytes.fromhex(a_out.scte35_out[2:]) == a.data
        assert (ta.command.splice_event_id, ta.command.out_of_network_indicator, ta.command.break_duration,
                ta.command.pts_time) == (1001, True, 6.0, round(source["pts"][5] / TICKS + 3, 6))
        assert round((ta.command.pts_time + ta.info_section.pts_adjustment) * TICKS) % (1 << 33) == source["pts"][5]
        tin = decoded(a_in.scte35_in)  # the source sent no return for 1001: ours, at its in-point
        assert (tin.command.splice_event_id, tin.command.out_of_network_indicator) == (1001, False)
        b_out, b_in = ranges[("src1-2002-20000", False)], ranges[("src1-2002-20000", True)]
        assert bytes.fromhex(b_out.scte35_out[2:]) == b.data and bytes.fromhex(b_in.scte35_in[2:]) == b_end.data
        assert b_in.duration == 6.0 and float(b_out.planned_duration) == 20.0
        tb = decoded(b_out.scte35_out).descriptors[0]
        assert (tb.segmentation_type_id, int(tb.segmentation_event_id, 16), tb.segmentation_duration) == (
            0x30, 2002, 20.0)
    if style == "interstitials":
        ads = [d for d in ranges.values() if d.class_ == "com.apple.hls.interstitial"]
        assert {d.id for d in ads} == {"src1-1001-10000-ad", "src1-2002-20000-ad", "src1-5005-33000-ad"}
        assert "X-ASSET-URI=\"/origin/ads/ad-6s/index.m3u8\"" in text and "X-RESUME-OFFSET=6.000" in text


def events_by_period(text: str) -> dict[int, tuple[str, ET.Element]]:
    """presentationTime -> (the Period holding it, the Event), over every Period of the MPD."""
    out = {}
    for period in ET.fromstring(text).iterfind("d:Period", NS):
        stream = period.find("d:EventStream", NS)
        assert stream is not None
        for e in stream.iterfind("d:Event", NS):
            out[int(e.attrib["presentationTime"])] = (period.attrib["id"], e)
    return out


@pytest.mark.parametrize("scheme", ["binary", "xml"])
def test_the_mpd_carries_the_source_cues_as_events_in_both_schemes(
        source: dict[str, Any], boto: Callable[[str], Any], scheme: str) -> None:
    republish("both", dash_ad_markers=scheme)
    text = origin_text(boto, source["dep"].origin_bucket, f"{CID}/manifest.mpd")
    want = "urn:scte:scte35:2014:xml+bin" if scheme == "binary" else "urn:scte:scte35:2013:xml"
    assert {e.attrib["schemeIdUri"] for e in ET.fromstring(text).iterfind("d:Period/d:EventStream", NS)} == {want}
    events = events_by_period(text)
    at = {k: round(media(k) * TICKS) for k in (5, 8, 10, 13)}
    if scheme == "binary":
        payload = {t: base64.b64decode(e.find("s:Signal/s:Binary", NS).text or "")  # type: ignore[union-attr]
                   for t, (_, e) in events.items()}
        assert payload[at[5]] == source["a"].data
        assert payload[at[10]] == source["b"].data
        assert payload[at[13]] == source["b_end"].data  # the source's return, its own Event
        assert decoded(base64.b64encode(payload[at[10]]).decode()).descriptors[0].segmentation_type_id == 0x30
    else:
        insert = events[at[5]][1].find("s:SpliceInfoSection/s:SpliceInsert", NS)
        assert insert is not None and insert.attrib["spliceEventId"] == "1001"
        seg = events[at[10]][1].find("s:SpliceInfoSection/s:SegmentationDescriptor", NS)
        assert seg is not None and seg.attrib["segmentationTypeId"] == str(0x30)
    assert int(events[at[5]][1].attrib["duration"]) == round(6.0 * TICKS)
    assert int(events[at[10]][1].attrib["duration"]) == round(3 * 2.0 * TICKS)  # the actual 6 s, not the 20 planned
    republish("both", dash_ad_markers="binary")


def test_dash_has_a_period_per_avail_with_each_cue_in_its_own_period(source: dict[str, Any],
                                                                     boto: Callable[[str], Any]) -> None:
    text = origin_text(boto, source["dep"].origin_bucket, f"{CID}/manifest.mpd")
    periods = [(p.attrib["id"], p.attrib["start"]) for p in ET.fromstring(text).iterfind("d:Period", NS)]
    assert periods == [("r1-0", "PT0S"), ("r1-5", "PT10S"), ("r1-8", "PT16S"), ("r1-10", "PT20S"),
                       ("r1-13", "PT26S"), ("r1-17", "PT34S"), ("r1-18", "PT36S")]
    events = events_by_period(text)
    assert events[round(media(5) * TICKS)][0] == "r1-5" and events[round(media(13) * TICKS)][0] == "r1-13"
    hls = origin_text(boto, source["dep"].origin_bucket, f"{CID}/360p/dvr.m3u8")
    assert "#EXT-X-DISCONTINUITY\n" not in hls  # Period boundaries, not discontinuities
