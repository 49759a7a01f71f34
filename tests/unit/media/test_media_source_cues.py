"""SCTE-35 from the source: sections read out of MPEG-TS (threefive), placed on the run's media clock,
classified against the channel's SCTE filter; and the source playlist parser reading every dialect the
packager writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import threefive
from media_helpers import brk, make_timeline

from chalicelib.errors import ValidationError
from chalicelib.media import hls, scte35
from chalicelib.media.adbreaks import source_signal, source_signals, splice_media
from chalicelib.media.source import parse_source_playlist
from tests.support.scte35_ts import corrupt_cue, inject

TINY = Path(__file__).parent / "fixtures" / "tiny_2s.ts"  # 2 s, IDRs at PTS 101.4 and 102.4 (-output_ts_offset 100)
FIRST_IDR = round(101.4 * 90_000)


def with_cues(tmp_path: Path, *cues: tuple[float, scte35.Cue]) -> bytes:
    out = inject(TINY, tmp_path / "cued.ts", [(at, c.base64) for at, c in cues])
    return out.read_bytes()


def test_given_a_chunk_with_an_scte35_pid_then_every_section_is_read_verbatim_with_its_position(
        tmp_path: Path) -> None:
    out = scte35.splice_insert(77, 102.4, 30.0)
    data = with_cues(tmp_path, (101.4, out), (102.4, out))
    scan = scte35.read_ts(data)
    assert scan.dropped == ()
    assert [c.cue.data for c in scan.cues] == [out.data, out.data]  # the encoder's bytes, CRC included
    assert {c.pid for c in scan.cues} == {0x86}
    # The second copy sits just before the IDR at 102.4: its position is the last PES PTS before it, the
    # frame before (25 fps); the first one came before any PES, so its position is unknown.
    assert scan.cues[0].packet_pts is None
    assert scan.cues[1].packet_pts == round(102.36 * 90_000)
    assert threefive.Cue(scan.cues[0].cue.base64).command.splice_event_id == 77


def test_skipping_the_packets_threefive_ignores_reads_exactly_what_parsing_every_packet_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = scte35.splice_insert(5, 102.4, 10.0)
    bad = scte35.time_signal(102.4, "provider_po_start", 10.0, 6)
    data = corrupt_cue(with_cues(tmp_path, (101.4, bad), (102.4, good)), bad.data)
    skipping = scte35.read_ts(data)
    monkeypatch.setattr(scte35, "_parsed", lambda pids, data, i: True)
    assert skipping == scte35.read_ts(data) and len(skipping.cues) == 1 and len(skipping.dropped) == 1
    assert skipping.cues[0].packet_pts is not None  # the PTS track (PCR PID packets) is still followed


def test_a_chunk_without_scte35_has_no_cues() -> None:
    assert scte35.read_ts(TINY.read_bytes()) == scte35.TsScan(())


def test_given_a_cue_whose_crc_fails_then_it_is_dropped_with_the_reason_and_the_others_still_read(
        tmp_path: Path) -> None:
    good = scte35.splice_insert(5, 102.4, 10.0)
    bad = scte35.time_signal(102.4, "provider_po_start", 10.0, 6)
    data = corrupt_cue(with_cues(tmp_path, (101.4, bad), (102.4, good)), bad.data)
    scan = scte35.read_ts(data)
    assert scan.dropped == ("SCTE-35 CRC-32 mismatch: the cue is corrupt",)
    assert [c.cue.event_id for c in scan.cues] == [5]


def test_splice_null_heartbeats_are_not_cues(tmp_path: Path) -> None:
    assert scte35.read_ts(with_cues(tmp_path, (101.4, scte35.splice_null()))).cues == ()


# --- the media clock -------------------------------------------------------------------------------


def test_the_splice_pts_maps_through_the_chunks_first_frame_onto_the_runs_media_clock() -> None:
    cue = scte35.splice_insert(1, 102.4, 30.0)
    # The chunk's first frame: source PTS 101.4 s sits at media 20.0 s of the run.
    assert splice_media(cue, None, FIRST_IDR, 20 * 90_000) == pytest.approx(21.0)


def test_pts_adjustment_is_applied_before_the_mapping() -> None:
    tf = threefive.Cue(scte35.splice_insert(1, 100.4, 30.0).base64)
    tf.info_section.pts_adjustment = 2.0  # the encoder's clock runs 2 s ahead of the cue's splice_time
    tf.encode()
    cue = scte35.decode(tf.bites)
    assert cue.pts == pytest.approx(102.4)
    assert splice_media(cue, None, FIRST_IDR, 20 * 90_000) == pytest.approx(21.0)


def test_a_splice_across_the_33_bit_wrap_lands_just_after_the_chunk_start() -> None:
    wrap = scte35.PTS_WRAP
    src_start = wrap - 90_000  # the chunk starts one second before the PTS counter wraps
    cue = scte35.splice_insert(1, 0.5, 30.0)  # 1.5 s later, after the wrap
    assert splice_media(cue, None, src_start, 3600 * 90_000) == pytest.approx(3601.5)


def test_an_immediate_splice_happens_where_the_cue_sits_in_the_stream() -> None:
    cue = scte35.splice_insert(1, None, 30.0)
    at = splice_media(cue, round(101.9 * 90_000), FIRST_IDR, 0)
    assert at == pytest.approx(0.5)
    assert splice_media(cue, None, FIRST_IDR, 0) == 0.0  # position unknown: the chunk's start


# --- what a cue asks for ---------------------------------------------------------------------------


def classify(cue: scte35.Cue, scte_filter: tuple[str, ...] = scte35.DEFAULT_SCTE_FILTER) -> tuple[str, int, float]:
    sig = source_signal(cue, position=None, src_start=0, media_start=0, scte_filter=scte_filter)
    return sig.action, sig.event_id, round(sig.media, 3)


def test_splice_insert_out_in_and_cancel() -> None:
    assert classify(scte35.splice_insert(9, 40.0, 30.0)) == ("out", 9, 40.0)
    assert classify(scte35.splice_insert(9, 55.0, None, out_of_network=False)) == ("in", 9, 55.0)
    assert classify(scte35.cancel(9))[:2] == ("cancel", 9)


def test_a_time_signal_whose_segmentation_event_is_cancelled_cancels_that_event() -> None:
    tf = threefive.Cue(scte35.time_signal(10.0, "provider_po_start", 20.0, 4).base64)
    tf.descriptors[0].segmentation_event_cancel_indicator = True
    tf.encode()
    assert classify(scte35.decode(tf.bites))[:2] == ("cancel", 4)


def test_time_signal_segmentation_start_and_end_pairs() -> None:
    for start, end in (("provider_po_start", "provider_po_end"), ("distributor_po_start", "distributor_po_end"),
                       ("provider_ad_start", "provider_ad_end"), ("distributor_ad_start", "distributor_ad_end"),
                       ("break_start", "break_end")):
        assert classify(scte35.time_signal(10.0, start, 20.0, 4)) == ("out", 4, 10.0), start
        assert classify(scte35.time_signal(30.0, end, None, 4)) == ("in", 4, 30.0), end


def test_the_channels_scte_filter_decides_which_types_become_breaks() -> None:
    po = scte35.time_signal(10.0, "provider_po_start", 20.0, 4)
    only_ads = ("SPLICE_INSERT", "PROVIDER_ADVERTISEMENT")
    sig = source_signal(po, position=None, src_start=0, media_start=0, scte_filter=only_ads)
    assert sig.action == "skip" and "PROVIDER_PLACEMENT_OPPORTUNITY is not in the channel's scte_filter" in sig.reason
    assert classify(scte35.time_signal(10.0, "provider_ad_start", 20.0, 4), only_ads)[0] == "out"
    assert classify(scte35.splice_insert(3, 1.0, 5.0), ("BREAK",))[0] == "skip"
    # Program boundaries are not avails unless asked for (MediaPackage's list has PROGRAM; ours leaves it out).
    assert classify(scte35.time_signal(1.0, "program_start", None, 2))[0] == "skip"
    assert classify(scte35.time_signal(1.0, "program_start", None, 2), ("PROGRAM",))[0] == "out"


def several(*cues: scte35.Cue) -> scte35.Cue:
    tf = threefive.Cue(cues[0].base64)
    for c in cues[1:]:
        tf.descriptors += threefive.Cue(c.base64).descriptors
    tf.encode()
    return scte35.decode(tf.bites)


def test_every_segmentation_descriptor_of_a_time_signal_is_classified_ends_first_one_start() -> None:
    cue = several(scte35.time_signal(10.0, "provider_ad_start", 20.0, 7),
                  scte35.time_signal(10.0, "provider_po_start", 30.0, 8),
                  scte35.time_signal(10.0, "provider_po_end", None, 6))
    sigs = source_signals(cue, position=None, src_start=0, media_start=0)
    # the end of the last avail first, then one break: the first start the filter lets through
    assert [(s.action, s.event_id, s.duration) for s in sigs] == [("in", 6, None), ("out", 7, 20.0)]
    po_only = ("PROVIDER_PLACEMENT_OPPORTUNITY",)
    sigs = source_signals(cue, position=None, src_start=0, media_start=0, scte_filter=po_only)
    assert [(s.action, s.event_id, s.duration) for s in sigs] == [("in", 6, None), ("out", 8, 30.0)]
    assert all(s.cue.data == cue.data for s in sigs)  # each passes the whole section through
    assert [s.action for s in source_signals(cue, position=None, src_start=0, media_start=0,
                                             scte_filter=("BREAK",))] == ["skip"]


def test_a_bare_time_signal_is_no_avail() -> None:
    tf = threefive.Cue()
    tf.command = threefive.TimeSignal()
    tf.command.time_specified_flag = True
    tf.command.pts_time = 12.0
    tf.encode()
    sig = source_signal(scte35.decode(tf.bites), position=None, src_start=0, media_start=0)
    assert sig.action == "skip" and "without a segmentation descriptor" in sig.reason


def test_scte_filter_names_are_validated() -> None:
    assert scte35.check_filter(["BREAK", "BREAK", "SPLICE_INSERT"]) == ("BREAK", "SPLICE_INSERT")
    with pytest.raises(ValidationError, match=r"unknown scte_filter value.*'ADS'.*allowed: SPLICE_INSERT, BREAK"):
        scte35.check_filter(["ADS"])


# --- the encoder's own HLS -------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["daterange", "elemental", "scte35_enhanced"])
def test_every_dialect_the_packager_writes_reads_back_as_the_same_break(dialect: str) -> None:
    """An encoder writing any of these dialects is a source: its breaks come back where they were."""
    tl = make_timeline(30, breaks=(brk(45.0, 8.0, event_id=500),), marker_style=dialect, dvr_window=60)
    pl = parse_source_playlist(hls.render_media(tl, "360p", "dvr"))
    [b] = pl.breaks
    [pts] = pl.points
    assert (pts.out_seq, pts.out_offset, pts.in_seq) == (23, 0.0, 27)
    assert b.duration == 8.0 and b.source == "source"
    if dialect != "elemental":  # the other two carry the binary cue: passed through verbatim
        assert scte35.decode(b.scte35_out or "").event_id == 500
        assert scte35.decode(b.scte35_in or "").out_of_network is False
