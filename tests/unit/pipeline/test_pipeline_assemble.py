"""Which segments the packager lists: contiguous, out-of-order finishes wait, overdue -> GAP."""

from __future__ import annotations

from datetime import timedelta

from pipeline_builders import ALL, T0, chunk

from chalicelib.media import hls
from chalicelib.pipeline.assemble import ChannelShape, Plan, PublishState, plan


def seqs(p: Plan) -> list[tuple[int, bool]]:
    return [(s.seq, s.gap) for s in p.timeline.segments]


def test_given_all_chunks_ready_then_all_are_listed_in_order(shape: ChannelShape) -> None:
    p = plan(shape, [chunk(i) for i in (2, 0, 1)], PublishState(), T0 + timedelta(seconds=7))
    assert seqs(p) == [(0, False), (1, False), (2, False)]
    assert p.state.published_seq == 2 and [c.seq for c in p.newly_published] == [0, 1, 2]
    assert p.timeline.segments[1].program_date_time == T0 + timedelta(seconds=2)


def test_given_a_successor_finishes_first_then_it_waits_for_its_predecessor(shape: ChannelShape) -> None:
    chunks = [chunk(0), chunk(1, done=None), chunk(2)]  # 1 received, still transcoding
    p = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=7))
    assert seqs(p) == [(0, False)]
    assert p.state.published_seq == 0
    assert p.recheck_at == T0 + timedelta(seconds=4 + 3 * 10)  # 1 arrived at 4 s: 3 x deadline to transcode
    # ... and once 1 finishes, 1 and 2 are published together, in order.
    chunks[1] = chunk(1)
    p2 = plan(shape, chunks, p.state, T0 + timedelta(seconds=8))
    assert seqs(p2) == [(0, False), (1, False), (2, False)]
    assert [c.seq for c in p2.newly_published] == [1, 2]


def test_given_a_missing_chunk_past_the_deadline_then_it_is_a_gap_never_a_hole(shape: ChannelShape) -> None:
    chunks = [chunk(0), chunk(2), chunk(3)]  # 1 never arrives; 2 arrived at 6 s
    early = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=15))
    assert seqs(early) == [(0, False)]
    late = plan(shape, chunks, early.state, T0 + timedelta(seconds=16.5))
    assert seqs(late) == [(0, False), (1, True), (2, False), (3, False)]
    assert late.new_gaps == (1,) and 1 in late.state.gaps
    gap = late.timeline.segments[1]
    assert gap.start == 2.0 and gap.duration == 2.0 and not late.timeline.segments[2].discontinuity
    text = hls.render_media(late.timeline, "360p")
    assert text.count("#EXT-X-GAP") == 1 and "00000001.m4s" in text


def test_given_a_gap_was_published_then_a_late_chunk_does_not_rewrite_history(shape: ChannelShape) -> None:
    chunks = [chunk(0), chunk(2)]
    gapped = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=30))
    assert seqs(gapped) == [(0, False), (1, True), (2, False)]
    again = plan(shape, [*chunks, chunk(1, at=31)], gapped.state, T0 + timedelta(seconds=32))
    assert seqs(again) == seqs(gapped) and again.newly_published == ()


def test_given_an_invalid_chunk_then_it_is_a_gap_at_once(shape: ChannelShape) -> None:
    p = plan(shape, [chunk(0), chunk(1, invalid=True), chunk(2)], PublishState(), T0 + timedelta(seconds=7))
    assert seqs(p) == [(0, False), (1, True), (2, False)]


def test_given_a_transcode_stuck_past_the_deadline_then_it_becomes_a_gap(shape: ChannelShape) -> None:
    chunks = [chunk(0), chunk(1, done=frozenset({"360p"}))]  # 240p + audio never finished
    waiting = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=5))
    assert waiting.state.published_seq == 0
    # While waiting, the rendition that finished may already list it (per-rendition prefix).
    assert "00000001.m4s" in hls.render_media(waiting.timeline, "360p")
    assert "00000001.m4s" not in hls.render_media(waiting.timeline, "240p")
    still = plan(shape, chunks, waiting.state, T0 + timedelta(seconds=15))  # late, not missing
    assert seqs(still) == [(0, False), (1, False)] and still.state.published_seq == 0
    overdue = plan(shape, chunks, still.state, T0 + timedelta(seconds=4 + 30))
    assert seqs(overdue) == [(0, False), (1, True)]


def test_given_a_timestamp_jump_then_a_discontinuity_is_marked(shape: ChannelShape) -> None:
    p = plan(shape, [chunk(0), chunk(1, start=20.0)], PublishState(), T0 + timedelta(seconds=5))
    assert [s.discontinuity for s in p.timeline.segments] == [False, True]
    jitter = plan(shape, [chunk(0), chunk(1, start=2.04)], PublishState(), T0 + timedelta(seconds=5))
    assert [s.discontinuity for s in jitter.timeline.segments] == [False, False]


def test_the_dvr_window_drops_old_segments_and_remembers_where_it_starts(shape: ChannelShape) -> None:
    chunks = [chunk(i) for i in range(40)]  # 80 s of media, DVR window 60 s
    p = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=90))
    assert p.state.first_seq == 10 and p.timeline.segments[0].seq == 10
    again = plan(shape, chunks[10:], p.state, T0 + timedelta(seconds=91))
    assert again.timeline.segments[0].seq == 10 and not again.changed


def test_final_lists_everything_ready_and_drops_the_unfinished_tail(shape: ChannelShape) -> None:
    chunks = [chunk(0), chunk(2), chunk(3, done=None)]
    p = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=7), final=True)
    assert seqs(p) == [(0, False), (1, True), (2, False)] and p.timeline.ended
    assert "#EXT-X-ENDLIST" in hls.render_media(p.timeline, "360p")


def test_a_hostile_far_future_seq_does_not_blow_up_the_loop(shape: ChannelShape) -> None:
    p = plan(shape, [chunk(0), chunk(10**11)], PublishState(), T0 + timedelta(seconds=5))
    assert seqs(p) == [(0, False)]


def test_no_chunks_gives_an_empty_unchanged_plan(shape: ChannelShape) -> None:
    p = plan(shape, [], PublishState(), T0)
    assert p.timeline.segments == () and not p.changed and ALL


def test_given_a_run_starting_above_seq_0_then_the_first_publish_waits_one_chunk_for_stragglers(
        shape: ChannelShape) -> None:
    chunks = [chunk(6, at=14.0)]
    early = plan(shape, chunks, PublishState(), T0 + timedelta(seconds=15))
    assert early.timeline.segments == () and early.recheck_at == T0 + timedelta(seconds=16)
    # seq 5's event was late but within the grace: it is not cut off
    later = plan(shape, [chunk(5, at=15.5), *chunks], PublishState(), T0 + timedelta(seconds=16))
    assert seqs(later) == [(5, False), (6, False)]


def test_given_a_discontinuity_at_the_window_start_then_it_stays_until_it_leaves_and_is_counted(
    shape: ChannelShape,
) -> None:
    """RFC 8216 6.2.1/6.2.2: a listed segment keeps its EXT-X-DISCONTINUITY until it leaves the
    playlist, and only then does EXT-X-DISCONTINUITY-SEQUENCE go up."""
    def chunks(last: int) -> list:  # the encoder's clock jumps 10 s between chunk 0 and chunk 1
        return [chunk(0), *(chunk(i, start=i * 2.0 + 10) for i in range(1, last + 1))]

    first = plan(shape, chunks(30), PublishState(), T0 + timedelta(seconds=62))
    assert first.timeline.segments[0].seq == 1 and first.timeline.segments[0].discontinuity
    again = plan(shape, chunks(30), first.state, T0 + timedelta(seconds=63))  # chunk 0's successor is first now
    assert again.timeline.segments[0].seq == 1 and again.timeline.segments[0].discontinuity
    assert again.timeline.discontinuities_before == 0
    later = plan(shape, chunks(31), again.state, T0 + timedelta(seconds=64))  # 1 leaves the window
    assert later.timeline.segments[0].seq == 2 and not later.timeline.segments[0].discontinuity
    assert later.timeline.discontinuities_before == 1
    for p, ds in ((again, 0), (later, 1)):
        assert f"#EXT-X-DISCONTINUITY-SEQUENCE:{ds}" in hls.render_media(p.timeline, "360p", "dvr")
