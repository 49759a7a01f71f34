"""Ad markers every downstream accepts: the HLS dialects (daterange, elemental, scte35_enhanced,
interstitials), early return, source breaks placed on the media clock with their cue verbatim, and the
DASH EventStream schemes (2014:xml+bin, 2013:xml) with the in-cue Event."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta

import m3u8
import pytest
import threefive
from media_helpers import T0, at, brk, check_golden, make_segments, make_timeline

from chalicelib.errors import ValidationError
from chalicelib.media import dash, hls, scte35
from chalicelib.media.adbreaks import check_marker_style, hls_dialects, place_breaks
from chalicelib.media.timeline import AdBreak, AdMarkers, Timeline

NS = {"d": "urn:mpeg:dash:schema:mpd:2011", "s": "http://www.scte.org/schemas/35/2016"}
AD = "https://ads.example.com/ad-30s/index.m3u8"


def whole_break(style: str, **kwargs: object) -> Timeline:
    """30 segments in the DVR window; an 8 s break at 45 s: out at seq 23 (46 s), in at seq 27 (54 s)."""
    kwargs.setdefault("dvr_window", 60.0)
    return make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), marker_style=style, **kwargs)  # type: ignore[arg-type]


def segments_of(text: str) -> dict[str, m3u8.Segment]:
    return {s.uri: s for s in m3u8.loads(text).segments}


# --- the dialects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["elemental", "scte35_enhanced", "interstitials"])
def test_golden_dvr_break_per_dialect(style: str) -> None:
    tl = whole_break(style, ad_markers=AdMarkers(asset_uri=AD))
    check_golden(f"dvr_break_{style}.m3u8", hls.render_media(tl, "360p", "dvr"))


def test_elemental_writes_cue_out_duration_cont_elapsed_over_duration_and_cue_in() -> None:
    text = hls.render_media(whole_break("elemental"), "360p", "dvr")
    assert "#EXT-X-CUE-OUT:8.000\n" in text
    assert "#EXT-X-CUE-OUT-CONT:2.000/8\n" in text and "#EXT-X-CUE-OUT-CONT:6.000/8\n" in text
    segs = segments_of(text)
    assert segs["00000023.m4s"].cue_out_start and float(segs["00000023.m4s"].scte35_duration) == 8.0
    assert segs["00000027.m4s"].cue_in
    assert "SCTE35" not in text and "OATCLS" not in text and "DATERANGE" not in text


def test_scte35_enhanced_carries_the_cue_on_every_tag_so_a_downstream_joining_mid_break_gets_it() -> None:
    tl = whole_break("scte35_enhanced")
    text = hls.render_media(tl, "360p", "dvr")
    segs = segments_of(text)
    out = segs["00000023.m4s"]
    assert out.cue_out_start and scte35.decode(out.oatcls_scte35).event_id == 500
    assert "#EXT-X-ASSET:CAID=0x00000000000001F4\n#EXT-X-CUE-OUT:8.000\n" in text  # event 500 as the CAID
    [placed] = place_breaks(tl)
    for n in (24, 25, 26):
        cont = segs[f"{n:08d}.m4s"]
        assert cont.cue_out and float(cont.scte35_elapsedtime) == 2.0 * (n - 23)
        assert scte35.decode(cont.scte35) == placed.cue_out
    # The live window opens mid-break: its first segment still has the out cue.
    live = m3u8.loads(hls.render_media(tl, "360p")).segments[0]
    assert live.cue_out and scte35.decode(live.scte35).is_out
    back = segs["00000027.m4s"]
    assert back.cue_in and scte35.decode(back.oatcls_scte35).out_of_network is False


def test_the_older_marker_styles_keep_working_as_their_dialects() -> None:
    """"cue" = scte35_enhanced; "both" = scte35_enhanced + daterange."""
    for old, new in (("cue", "scte35_enhanced"), ("both", "scte35_enhanced,daterange"), ("daterange", "daterange")):
        hls._cache = None
        a = hls.render_media(whole_break(old), "360p", "dvr")
        hls._cache = None
        assert a == hls.render_media(whole_break(new), "360p", "dvr"), old


def test_interstitials_schedule_the_channels_ad_asset_in_the_break() -> None:
    tl = whole_break("interstitials", ad_markers=AdMarkers(asset_uri=AD))
    text = hls.render_media(tl, "360p", "dvr")
    [out, back] = [d for s in m3u8.loads(text).segments for d in (s.dateranges or [])]
    assert out.id == back.id == "b1-ad" and out.class_ == "com.apple.hls.interstitial"
    assert out.start_date == back.start_date == "2026-03-01T09:00:46.000Z"
    line = next(ln for ln in text.splitlines() if "END-DATE" not in ln and "interstitial" in ln)
    assert f'X-ASSET-URI="{AD}"' in line and "X-RESUME-OFFSET=8.000" in line and 'X-RESTRICT="SKIP,JUMP"' in line
    # The in-point re-emits the same tag, every attribute unchanged, plus END-DATE and DURATION.
    again = next(ln for ln in text.splitlines() if "END-DATE" in ln)
    assert again.startswith(line + ",") and again.endswith(',END-DATE="2026-03-01T09:00:54.000Z",DURATION=8.000')
    asset_list = hls.render_media(replace(tl, ad_markers=AdMarkers(asset_list="https://ads.example.com/list.json")),
                                  "360p", "dvr")
    assert 'X-ASSET-LIST="https://ads.example.com/list.json"' in asset_list and "X-ASSET-URI" not in asset_list


def test_an_announced_break_is_scheduled_before_its_segment_in_every_daterange_dialect() -> None:
    tl = make_timeline(30, breaks=(brk(60.0, 8.0),), marker_style="interstitials,daterange",
                       ad_markers=AdMarkers(asset_uri=AD))
    text = hls.render_media(tl, "360p")
    tail = text.rsplit("00000029.m4s\n", 1)[1]
    assert 'ID="b1"' in tail and 'ID="b1-ad"' in tail and 'START-DATE="2026-03-01T09:01:00.000Z"' in tail


def test_dialect_names_are_validated_naming_the_allowed_values() -> None:
    assert hls_dialects("elemental, daterange") == ("elemental", "daterange")
    assert check_marker_style(["daterange", "interstitials"]) == "daterange,interstitials"
    assert check_marker_style("both") == "both"
    with pytest.raises(ValidationError, match="unknown ad marker dialect 'adobe'; use one or more of daterange, "
                                              "elemental, scte35_enhanced, interstitials"):
        check_marker_style("adobe")
    with pytest.raises(ValidationError, match="both write EXT-X-CUE-OUT"):
        hls.render_media(whole_break("elemental,scte35_enhanced"), "360p")


# --- early return ----------------------------------------------------------------------------------


def returned(style: str, kind: str = "splice_insert") -> Timeline:
    """A 30 s break from 45 s, ended by the operator at 51.3 s: the in-point is the next boundary, 52 s."""
    b = brk(45.0, 30.0, event_id=500, kind=kind, returned_at=at(51.3))
    return make_timeline(30, breaks=(b,), marker_style=style, dvr_window=60.0,
                         ad_markers=AdMarkers(asset_uri=AD))


def test_golden_early_return_in_both_dialects() -> None:
    check_golden("dvr_early_return_both.m3u8", hls.render_media(returned("both"), "360p", "dvr"))


@pytest.mark.parametrize("style", ["daterange", "elemental", "scte35_enhanced", "interstitials"])
def test_an_early_return_puts_cue_in_on_the_next_boundary_in_every_dialect(style: str) -> None:
    text = hls.render_media(returned(style), "360p", "dvr")
    segs = segments_of(text)
    inside = [s.uri for s in m3u8.loads(text).segments if s.cue_out]
    if style in ("elemental", "scte35_enhanced"):
        assert segs["00000026.m4s"].cue_in and inside == ["00000023.m4s", "00000024.m4s", "00000025.m4s"]
    ranges = [d for s in m3u8.loads(text).segments for d in (s.dateranges or [])]
    if style in ("daterange", "interstitials"):
        out, back = ranges
        assert out.id == back.id and back.end_date == "2026-03-01T09:00:52.000Z" and back.duration == 6.0
        assert float(out.planned_duration) == 30.0  # what was planned stays as published
    if style == "daterange":
        cue = scte35.decode(back.scte35_in)
        assert (cue.command, cue.out_of_network, cue.event_id, cue.pts) == ("splice_insert", False, 500, 52.0)


def test_an_early_return_of_a_time_signal_break_is_its_placement_opportunity_end() -> None:
    [placed] = place_breaks(returned("daterange", kind="time_signal"))
    assert placed.cue_in is not None and placed.cue_in.segmentation_type == "provider_po_end"
    assert placed.cue_in.pts == 52.0 and placed.cue_in.event_id == 500


def test_dash_gets_an_event_for_the_in_cue_of_an_early_return() -> None:
    tl = returned("daterange")
    mpd = dash.render_mpd(tl, T0 + timedelta(seconds=61))
    [out, back] = ET.fromstring(mpd).iterfind("d:Period/d:EventStream/d:Event", NS)
    assert out.attrib["id"] == "500" and int(out.attrib["duration"]) == 6 * 90_000  # actual length
    assert int(back.attrib["presentationTime"]) == 52 * 90_000 and back.attrib["duration"] == "0"
    assert back.attrib["id"] == str(dash.in_event_id(place_breaks(tl)[0]))
    binary = back.find("s:Signal/s:Binary", NS)
    assert binary is not None and binary.text
    tf = threefive.Cue(binary.text)
    assert tf.command.out_of_network_indicator is False and tf.command.splice_event_id == 500
    # A break that ended at its planned end needs no in Event (its out Event's duration says it).
    plain = dash.render_mpd(whole_break("daterange"), T0 + timedelta(seconds=61))
    assert plain.count("<Event ") == 1


def test_dash_xml_scheme_carries_the_section_as_scte35_xml() -> None:
    tl = replace(returned("daterange"), ad_markers=AdMarkers(dash_scheme="xml"))
    mpd = dash.render_mpd(tl, T0 + timedelta(seconds=61))
    root = ET.fromstring(mpd)
    stream = root.find("d:Period/d:EventStream", NS)
    assert stream is not None and stream.attrib["schemeIdUri"] == "urn:scte:scte35:2013:xml"
    [out, back] = stream.iterfind("d:Event", NS)
    section = out.find("s:SpliceInfoSection", NS)
    assert section is not None
    insert = section.find("s:SpliceInsert", NS)
    assert insert is not None and insert.attrib["spliceEventId"] == "500"
    assert insert.attrib["outOfNetworkIndicator"] == "true"
    pts = section.find("s:SpliceInsert/s:Program/s:SpliceTime", NS)
    assert pts is not None and int(pts.attrib["ptsTime"]) == 46 * 90_000
    duration = section.find("s:SpliceInsert/s:BreakDuration", NS)
    assert duration is not None and int(duration.attrib["duration"]) == 30 * 90_000
    back_insert = back.find("s:SpliceInfoSection/s:SpliceInsert", NS)
    assert back_insert is not None and back_insert.attrib["outOfNetworkIndicator"] == "false"


def test_the_xml_of_a_time_signal_names_its_segmentation_descriptor() -> None:
    cue = scte35.time_signal(10.0, "distributor_po_start", 30.0, 7)
    section = ET.fromstring(f'<r xmlns:scte35="{NS["s"]}">{scte35.to_xml(cue)}</r>')[0]
    seg = section.find("s:SegmentationDescriptor", NS)
    ts = section.find("s:TimeSignal/s:SpliceTime", NS)
    assert ts is not None and ts.attrib["ptsTime"] == "900000"
    assert seg is not None and seg.attrib["segmentationTypeId"] == str(0x36)
    assert seg.attrib["segmentationEventId"] == "7" and seg.attrib["segmentationDuration"] == "2700000"


# --- breaks from the source ------------------------------------------------------------------------


def source_break(media: float, duration: float, cue: scte35.Cue, **kwargs: object) -> AdBreak:
    # Its PDT is off by 0.7 s (the run's wall clock drifted from its media clock): placement uses media time.
    return AdBreak(id="src1-77-46000", splice_event_id=cue.event_id or 0, start=at(media + 0.7),
                   duration=duration, kind=cue.command, source="source", scte35_out=cue.base64, run="r1",
                   media_time=media, **kwargs)  # type: ignore[arg-type]


def on_run(count: int = 30) -> tuple:  # type: ignore[type-arg]
    return tuple(replace(s, run="r1") for s in make_segments(count))


def test_a_source_break_is_placed_by_media_time_and_passes_the_encoders_cue_through_verbatim() -> None:
    source = scte35.time_signal(46.0, "provider_ad_start", 8.0, 77)
    tl = make_timeline(segments=on_run(), breaks=(source_break(46.0, 8.0, source),), marker_style="both",
                       dvr_window=60.0)
    [placed] = place_breaks(tl)
    assert (placed.out_seq, placed.in_seq) == (23, 27)
    assert placed.cue_out.data == source.data  # the source's bytes, not a cue of ours
    text = hls.render_media(tl, "360p", "dvr")
    segs = segments_of(text)
    assert scte35.decode(segs["r1/00000023.m4s"].oatcls_scte35).data == source.data
    assert segs["r1/00000023.m4s"].dateranges[0].scte35_out == source.hex
    # Its return is the partner descriptor (provider advertisement end, same event id).
    assert placed.cue_in is not None and placed.cue_in.segmentation_type_id == 0x31 and placed.cue_in.event_id == 77


def test_a_source_cue_in_ends_the_break_early_with_the_sources_own_in_cue() -> None:
    out = scte35.splice_insert(77, 46.0, 30.0)
    back = scte35.splice_insert(77, 50.0, None, out_of_network=False)
    b = source_break(46.0, 30.0, out, return_media=50.0, scte35_in=back.base64)
    tl = make_timeline(segments=on_run(), breaks=(b,), marker_style="daterange", dvr_window=60.0)
    [placed] = place_breaks(tl)
    assert (placed.in_seq, placed.cue_in) == (25, back)
    mpd = dash.render_mpd(tl, T0 + timedelta(seconds=61))
    assert mpd.count("<Event ") == 2 and back.base64 in mpd


def test_an_open_ended_source_break_runs_until_its_return() -> None:
    out = scte35.splice_insert(77, 46.0, None)  # no break_duration
    tl = make_timeline(segments=on_run(), breaks=(source_break(46.0, 0.0, out),),
                       marker_style="scte35_enhanced,daterange", dvr_window=60.0)
    [placed] = place_breaks(tl)
    assert placed.in_seq is None
    text = hls.render_media(tl, "360p", "dvr")
    assert "#EXT-X-CUE-OUT\n" in text and "PLANNED-DURATION" not in text and "CUE-IN" not in text
    assert "#EXT-X-CUE-OUT-CONT:ElapsedTime=12.000,SCTE35=" in text  # the last segment, 58 s
