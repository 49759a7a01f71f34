"""The packager's planner (pure): every slot published once, as media or slate, in order, on the grid.

Given chunk states, a publish state and a clock, `plan` says what to list, which slots to claim for
slate, where Periods start and when to look again."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.media.ladder import TEST_LADDER
from chalicelib.pipeline import assemble
from chalicelib.pipeline.assemble import (
    INVALID,
    MEDIA,
    RECEIVED,
    SLATE,
    ChannelShape,
    ChunkState,
    Plan,
    PublishState,
    RunInfo,
    SlotClaim,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMES = frozenset(TEST_LADDER.names)
SHAPE = ChannelShape("ch", TEST_LADDER, 2.0, live_window=12.0, dvr_window=20.0)
FRAME = 3600  # 25 fps at 90 kHz
SEG = 50 * FRAME  # one 2 s segment


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def chunk(seq: int, *, done: bool = True, shift: int = 0, status: str = RECEIVED, arrived: float | None = None,
          ready: float | None = None, fill: str = "", frames: int = 50) -> ChunkState:
    """Chunk `seq` of a continuous encoder: video on the grid, copied AAC 256 samples late (94/93 frames)."""
    v = seq * SEG + shift
    a_first = 256 + seq * 96_000 + shift * 48_000 // 90_000
    a0 = a_first + (-(a_first - 256) % 1024)
    a1 = 256 + (seq + 1) * 96_000 + shift * 48_000 // 90_000
    a1 = a1 + (-(a1 - 256) % 1024)
    received = at(arrived if arrived is not None else 2 * seq + 2)
    return ChunkState(seq=seq, status=status, received_at=received, v_start=v, v_dur=frames * FRAME, a_start=a0,
                      a_dur=a1 - a0, done=NAMES if done else frozenset(),
                      done_at=(at(ready) if ready is not None else received + timedelta(seconds=0.5)) if done else None,
                      fill=fill, codecs={"360p": "avc1.42c01e"} if done else {})


RUN = RunInfo(1, T0, audio_phase=256, slate_ready=True, started_at=at(2))


EMPTY = PublishState()


def run_plan(chunks: list[ChunkState], now: float, pub: PublishState = EMPTY, runs: dict | None = None,
             **kw: object) -> Plan:
    by_run: dict[int, dict[int, ChunkState]] = {}
    for c in chunks:
        by_run.setdefault(c.run or 1, {})[c.seq] = c
    return assemble.plan(SHAPE, runs or {1: RUN}, by_run, pub, at(now), current=kw.pop("current", 1), **kw)  # type: ignore[arg-type]


def listed(p: Plan) -> list[str]:
    return [f"{s.run}/{s.seq}{'*' if s.slate else ''}" for s in p.timeline.segments]


def claimed(p: Plan, c: SlotClaim) -> ChunkState:
    """The slot as the packager records it once its slate claim succeeded."""
    return ChunkState(seq=c.seq, status=RECEIVED, received_at=at(0), v_start=c.v_start, v_dur=c.v_dur,
                      a_start=c.a_start, a_dur=c.a_dur, fill=SLATE, run=c.run)


def test_given_all_chunks_ready_then_all_are_listed_in_order_in_one_period() -> None:
    p = run_plan([chunk(s) for s in range(3)], now=7)
    assert listed(p) == ["r1/0", "r1/1", "r1/2"]
    assert [s.number for s in p.timeline.segments] == [0, 1, 2]
    assert [s.period for s in p.timeline.segments] == ["r1-0"] * 3
    assert not any(s.discontinuity for s in p.timeline.segments)
    assert [s.program_date_time for s in p.timeline.segments] == [at(0), at(2), at(4)]
    assert p.state.target == 2 and p.state.ast == T0 and p.changed
    assert p.timeline.codecs["360p"] == "avc1.42c01e"


def test_given_a_successor_finishes_first_then_it_waits_one_segment_for_its_predecessor() -> None:
    chunks = [chunk(0), chunk(1, done=False), chunk(2, ready=6.5)]
    p = run_plan(chunks, now=7.0)
    assert listed(p) == ["r1/0"] and p.claims == ()
    assert p.recheck_at == at(8.5)  # one segment after 2 was ready


def test_given_a_missing_chunk_then_its_slot_is_claimed_for_slate_where_it_belongs() -> None:
    chunks = [chunk(0), chunk(2, ready=6.5), chunk(3, ready=8.5)]
    p = run_plan(chunks, now=8.5)
    [claim] = p.claims
    c0, c2 = chunks[0], chunks[1]
    assert (claim.run, claim.seq, claim.reason) == (1, 1, "missing")
    assert claim.v_start == SEG and claim.v_dur == SEG  # right after 0, up to where 2 starts
    assert claim.a_start == c0.a_start + c0.a_dur and claim.a_start + claim.a_dur == c2.a_start
    assert listed(p) == ["r1/0"]  # nothing past the hole until the claim is taken
    after = run_plan([*chunks, claimed(p, claim)], now=8.5)
    assert listed(after) == ["r1/0", "r1/1*", "r1/2", "r1/3"] and after.new_slates == ((1, 1),)
    assert not any(s.discontinuity for s in after.timeline.segments)  # slate tiles the grid: one Period


def test_given_a_missing_chunk_after_an_encoder_pause_then_it_is_slated_as_soon_as_a_later_one_is_ready() -> None:
    # 1 never comes; the encoder pauses, and 2 is ready only at 10.5, 6.5 s after 1 was due (at 4):
    # waiting another segment for 1 would only lengthen the hole every viewer has to ride out.
    chunks = [chunk(0), chunk(2, arrived=10.0, ready=10.5)]
    [claim] = run_plan(chunks, now=10.5).claims
    assert (claim.seq, claim.reason) == (1, "missing")
    # Overdue from 8 (due at 4, two waits): a later chunk ready at 7 waits for it until 8, not 9.
    mid = run_plan([chunk(0), chunk(2, arrived=6.8, ready=7.0)], now=7.0)
    assert mid.claims == () and mid.recheck_at == at(8.0)
    # One slot out of order (1 comes just after 2, a segment late): 2 ready at 6.5 still waits 1.5 s for
    # it, until 8 (two waits after 1 was due).
    swapped = run_plan([chunk(0), chunk(2, arrived=6.0, ready=6.5)], now=6.5)
    assert swapped.claims == () and swapped.recheck_at == at(8.0)


def test_given_a_missing_chunk_after_a_slate_then_it_is_overdue_from_the_slates_end() -> None:
    # 1 never came and is slate (claimed at 9: its received_at says nothing about when 2 was due); 2
    # never comes either: it was due at 6, where the slate ends, and is overdue at 10 (two waits).
    slate1 = replace(chunk(1, done=False), fill=SLATE, received_at=at(9.0), claimed_at=at(9.0))
    pub = run_plan([chunk(0), slate1], now=9.0).state
    assert pub.run(1).last_seq == 1  # type: ignore[union-attr]
    early = run_plan([chunk(0), slate1, chunk(3, arrived=8.5, ready=9.5)], now=9.5, pub=pub)
    assert early.claims == () and early.recheck_at == at(10.0)  # not 11.5 (claim time + 2 s + two waits)
    [claim] = run_plan([chunk(0), slate1, chunk(3, arrived=8.5, ready=9.5)], now=10.0, pub=pub).claims
    assert (claim.seq, claim.reason, claim.v_start) == (2, "missing", 2 * SEG)


def test_given_a_received_chunk_still_transcoding_then_it_keeps_the_whole_wait_however_late_it_came() -> None:
    chunks = [chunk(0), chunk(1, arrived=12.0, done=False), chunk(2, arrived=12.0, ready=12.5)]
    p = run_plan(chunks, now=12.5)
    assert p.claims == () and p.recheck_at == at(14.5)


def test_given_a_chunk_that_never_finishes_transcoding_then_it_is_slated_as_late() -> None:
    chunks = [chunk(0), chunk(1, done=False, arrived=4), chunk(2, ready=6.5)]
    [claim] = run_plan(chunks, now=8.6).claims
    assert claim.reason == "late" and claim.v_dur == 50 * FRAME


def test_given_a_corrupt_chunk_then_its_slot_is_claimed_at_once() -> None:
    chunks = [chunk(0), replace(chunk(1, done=False), status=INVALID, v_start=None, v_dur=None)]
    [claim] = run_plan(chunks, now=4.1).claims
    assert claim.reason == "invalid" and claim.v_start == SEG and claim.v_dur == SEG  # nominal: nothing to go by


def test_given_a_worker_is_uploading_the_slot_then_the_packager_waits_unless_its_claim_is_stale() -> None:
    uploading = replace(chunk(1, done=False), fill=MEDIA, claimed_at=at(8.0))
    chunks = [chunk(0), uploading, chunk(2, ready=6.5)]
    p = run_plan(chunks, now=8.6)
    assert p.claims == () and p.recheck_at == at(8.0) + assemble.STALE_CLAIM
    stale = run_plan(chunks, now=8.0 + assemble.STALE_CLAIM.total_seconds())
    assert [c.seq for c in stale.claims] == [1]


def test_given_the_slate_is_not_rendered_yet_then_the_slot_waits_and_looks_again_in_a_second() -> None:
    chunks = [chunk(0), chunk(2, ready=6.5)]
    p = run_plan(chunks, now=9.0, runs={1: replace(RUN, slate_ready=False)})
    assert p.claims == () and p.recheck_at == at(10.0)


def test_given_the_last_chunk_is_missing_then_there_is_nothing_to_advance_to() -> None:
    p = run_plan([chunk(0), chunk(1)], now=60)
    assert listed(p) == ["r1/0", "r1/1"] and p.claims == () and p.recheck_at is None


def test_given_an_encoder_clock_step_then_a_new_period_whose_pdt_continues() -> None:
    step = -FRAME * 25  # the encoder's clock stepped back 1 s
    chunks = [chunk(0), chunk(1), chunk(2, shift=step), chunk(3, shift=step)]
    p = run_plan(chunks, now=9)
    segs = p.timeline.segments
    assert [s.discontinuity for s in segs] == [False, False, True, False]
    assert [s.period for s in segs] == ["r1-0", "r1-0", "r1-2", "r1-2"]
    assert segs[2].program_date_time == segs[1].program_date_time + timedelta(seconds=2)  # no overlap
    [_, second] = p.timeline.periods
    assert second.start == 4.0 and second.v0 == 2 * SEG + step


def test_given_an_outage_then_the_new_period_follows_the_wall_clock() -> None:
    jump = 60 * 90_000  # the encoder was away for a minute and came back with its clock moved on
    chunks = [chunk(0), chunk(1), chunk(2, shift=jump, arrived=66), chunk(3, shift=jump, arrived=68)]
    segs = run_plan(chunks, now=69).timeline.segments
    assert segs[2].discontinuity and segs[2].program_date_time == at(64)


def stopped(p: Plan) -> PublishState:
    """The publish state once the run's stop sealed it."""
    return replace(p.state, runs=tuple(replace(r, sealed=True) for r in p.state.runs))


def claim_all(p: Plan) -> list[ChunkState]:
    return [claimed(p, c) for c in p.claims]


def run2_chunks(starts: float, n: int) -> list[ChunkState]:
    """Run 2's first `n` chunks, its media time 0 at `starts` s (its RunInfo) on the wall clock."""
    return [replace(chunk(s), run=2, received_at=at(starts + 2 + 2 * s)) for s in range(n)]


def test_given_a_new_run_then_numbering_and_pdt_continue_with_a_discontinuity_and_a_new_period() -> None:
    first = stopped(run_plan([chunk(s) for s in range(3)], now=7))
    run2 = RunInfo(2, at(100), slate_ready=True, started_at=at(102))
    chunks = [chunk(s) for s in range(3)] + run2_chunks(100, 2)
    runs = {1: RUN, 2: run2}
    # The channel was off air from 6 to 100: the bridge (3 segments of run 1's slate after its end)
    # is claimed first, and run 2 starts only once it is listed.
    waiting = run_plan(chunks, now=105, pub=first, runs=runs, current=2)
    assert listed(waiting) == ["r1/0", "r1/1", "r1/2"] and [(c.run, c.seq) for c in waiting.claims] == [
        (1, 3), (1, 4), (1, 5)]
    assert all(c.reason == "between runs" for c in waiting.claims) and waiting.recheck_at == at(106)
    p = run_plan([*chunks, *claim_all(waiting)], now=105, pub=first, runs=runs, current=2)
    segs = p.timeline.segments
    assert listed(p) == ["r1/0", "r1/1", "r1/2", "r1/3*", "r1/4*", "r1/5*", "r2/0", "r2/1"]
    assert [s.number for s in segs] == list(range(8))
    assert [s.discontinuity for s in segs] == [False] * 6 + [True, False]
    assert segs[5].program_date_time == at(10)  # the bridge continues run 1 (one Period) ...
    assert segs[6].program_date_time == at(100) and segs[6].run == "r2"  # ... a longer outage keeps its hole
    assert [pd.id for pd in p.timeline.periods] == ["r1-0", "r2-0"]
    assert p.timeline.periods[1].start == 100.0 and p.timeline.periods[1].v0 == 0
    assert p.new_slates == ((1, 3), (1, 4), (1, 5)) and p.state.run(1).last_seq == 5  # type: ignore[union-attr]
    # Published: the next plan lists the bridge from the stored state and claims nothing more.
    again = run_plan([*chunks, *claim_all(waiting)], now=107, pub=p.state, runs=runs, current=2)
    assert listed(again) == listed(p) and again.claims == () and not again.changed


def test_given_a_short_stop_then_the_bridge_fills_the_off_air_time_and_the_next_run_continues_it() -> None:
    # Run 1 ends at 6 (PDT); run 2's media time 0 is at 9.5 on the wall clock: 3.5 s off air.
    first = stopped(run_plan([chunk(s) for s in range(3)], now=7))
    runs = {1: RUN, 2: RunInfo(2, at(9.5), slate_ready=True, started_at=at(11.5))}
    chunks = [chunk(s) for s in range(3)] + run2_chunks(9.5, 1)
    waiting = run_plan(chunks, now=12, pub=first, runs=runs, current=2)
    claims = waiting.claims
    assert [c.v_dur for c in claims] == [44 * FRAME, 43 * FRAME]  # 87 frames in two segments
    assert claims[0].v_start == 3 * SEG and claims[1].v_start == claims[0].v_start + claims[0].v_dur
    for a, b in itertools.pairwise(claims):  # audio tiles run 1's AAC grid too
        assert b.a_start == a.a_start + a.a_dur and a.a_dur % 1024 == 0
    p = run_plan([*chunks, *claim_all(waiting)], now=12, pub=first, runs=runs, current=2)
    segs = p.timeline.segments
    assert listed(p) == ["r1/0", "r1/1", "r1/2", "r1/3*", "r1/4*", "r2/0"]
    # 87 whole frames (3.48 s) bridge the 3.5 s; run 2 continues where the bridge ends, within a frame of
    # its wall clock: no hole in PDT, nor on the DASH timeline.
    assert segs[5].program_date_time == segs[4].program_date_time + timedelta(seconds=segs[4].duration) == at(9.48)
    assert p.timeline.periods[1].start == 9.48


def test_given_a_stop_shorter_than_a_quarter_segment_then_no_bridge() -> None:
    first = stopped(run_plan([chunk(s) for s in range(3)], now=7))
    runs = {1: RUN, 2: RunInfo(2, at(6.4), slate_ready=True, started_at=at(8.4))}
    p = run_plan([chunk(s) for s in range(3)] + run2_chunks(6.4, 1), now=9, pub=first, runs=runs, current=2)
    assert p.claims == () and listed(p) == ["r1/0", "r1/1", "r1/2", "r2/0"]


def test_given_a_straggler_holds_the_slot_after_a_sealed_run_then_no_bridge_over_it() -> None:
    first = stopped(run_plan([chunk(s) for s in range(3)], now=7))
    runs = {1: RUN, 2: RunInfo(2, at(20), slate_ready=True, started_at=at(22))}
    straggler = chunk(3, done=False, arrived=8)
    p = run_plan([chunk(s) for s in range(3)] + [straggler] + run2_chunks(20, 1), now=23, pub=first,
                 runs=runs, current=2)
    assert p.claims == () and listed(p) == ["r1/0", "r1/1", "r1/2", "r2/0"]


def test_the_dvr_window_drops_old_segments_and_counts_the_discontinuities_that_left() -> None:
    step = -FRAME * 10
    chunks = [chunk(s) for s in range(3)] + [chunk(s, shift=step) for s in range(3, 14)]
    pub = PublishState()
    p = run_plan(chunks, now=30, pub=pub)
    assert len(p.timeline.segments) == 10  # 20 s of DVR window
    assert p.state.runs[0].first_seq == 4 and p.state.disc_before == 1  # the tag on seq 3 left with it
    assert [pd.id for pd in p.state.periods] == ["r1-3"]  # the first Period has no segment left


def test_given_a_run_starting_above_seq_0_then_the_first_publish_waits_one_chunk_for_stragglers() -> None:
    chunks = [chunk(5, arrived=12)]
    early = run_plan(chunks, now=12.5)
    assert listed(early) == [] and early.recheck_at == at(14)
    later = run_plan(chunks, now=14)
    assert listed(later) == ["r1/5"]
    assert later.timeline.segments[0].number == 5


def test_given_a_chunk_below_the_runs_first_seq_arrives_then_it_is_late() -> None:
    first = run_plan([chunk(5, arrived=12)], now=14)
    p = run_plan([chunk(4, arrived=15), chunk(5, arrived=12)], now=15, pub=first.state)
    assert listed(p) == ["r1/5"] and p.late == ((1, 4),)


def test_given_a_stop_then_in_flight_chunks_get_a_grace_then_holes_become_slate_and_the_run_seals() -> None:
    chunks = [chunk(0), chunk(1, done=False, arrived=4)]
    stop = {1: at(4.5)}
    waiting = run_plan(chunks, now=5, seal=[1], stop_at=stop, seal_grace=6)
    assert waiting.claims == () and not waiting.state.runs[0].sealed and waiting.recheck_at == at(10.5)
    [claim] = run_plan(chunks, now=10.5, seal=[1], stop_at=stop, seal_grace=6).claims
    assert claim.reason == "stopped"
    sealed = run_plan([chunks[0], claimed(waiting, claim)], now=10.5, seal=[1], stop_at=stop, seal_grace=6)
    assert listed(sealed) == ["r1/0", "r1/1*"] and sealed.state.runs[0].sealed
    # A straggler for a sealed run is never listed; it is reported late.
    after = run_plan([chunks[0], claimed(waiting, claim), chunk(2)], now=12, pub=sealed.state)
    assert listed(after) == ["r1/0", "r1/1*"] and after.late == ((1, 2),)


def test_given_the_event_ends_then_the_timeline_is_ended_for_good() -> None:
    p = run_plan([chunk(0), chunk(1)], now=5, end_event=True)
    assert p.timeline.ended and p.state.ended
    again = run_plan([chunk(0), chunk(1), chunk(2)], now=8, pub=p.state)
    assert listed(again) == ["r1/0", "r1/1"] and again.timeline.ended


def test_a_hostile_far_future_seq_does_not_blow_up_the_loop() -> None:
    p = run_plan([chunk(0), chunk(10**11, arrived=3)], now=5)
    assert listed(p) == ["r1/0"]


def test_no_chunks_gives_an_empty_unchanged_plan() -> None:
    p = run_plan([], now=5)
    assert p.timeline.segments == () and not p.changed


@pytest.mark.parametrize(("neighbour", "frames"), [("received", 61), ("next", 55), ("none", 50)])
def test_a_slates_length_comes_from_its_chunk_or_the_next_one_or_one_nominal_segment(neighbour: str, frames: int
                                                                                     ) -> None:
    c0 = chunk(0)
    later = chunk(3, ready=8.5)
    chunks = [c0, later]
    if neighbour == "received":
        chunks.append(replace(chunk(1, done=False, frames=61), status=INVALID))
    elif neighbour == "next":
        chunks.append(replace(chunk(2, ready=6.5), v_start=SEG + 55 * FRAME))
    claim = run_plan(chunks, now=10.6).claims[0]
    assert claim.seq == 1 and claim.v_dur == frames * FRAME
    video_end = round((SEG + frames * FRAME) * 48_000 / 90_000)
    assert claim.a_dur % 1024 == 0 and abs(claim.a_start + claim.a_dur - video_end) <= 2 * 1024


def test_given_a_runs_first_chunk_transcodes_slowly_then_the_run_starts_with_it_not_after_it() -> None:
    """Cold Lambdas: chunk 1 is ready before chunk 0. The run still starts at 0, and 0 gets a longer wait."""
    chunks = [chunk(0, done=False, arrived=2), chunk(1, ready=3.0)]
    p = run_plan(chunks, now=7.0)
    assert listed(p) == [] and p.claims == () and p.recheck_at == at(3.0 + 3 * 2.0)
    done = run_plan([chunk(0, ready=8.0), chunk(1, ready=3.0)], now=8.0)
    assert listed(done) == ["r1/0", "r1/1"]
    # Still not there after three slate waits: its slot becomes slate at its own place.
    [claim] = run_plan(chunks, now=9.0).claims
    assert (claim.seq, claim.v_start, claim.reason) == (0, 0, "late")


# --- input loss: a never-received slot is slated with nothing later ready (issue #15, DASH engines) ---

LOSS = replace(SHAPE, input_loss_wait=3.0)


def loss_plan(chunks: list[ChunkState], now: float, **kw: object) -> Plan:
    by_run: dict[int, dict[int, ChunkState]] = {}
    for c in chunks:
        by_run.setdefault(c.run or 1, {})[c.seq] = c
    return assemble.plan(LOSS, {1: RUN}, by_run, EMPTY, at(now), current=1, **kw)  # type: ignore[arg-type]


def settle(chunks: list[ChunkState], now: float, **kw: object) -> tuple[Plan, list[ChunkState]]:
    """Plan, take every slate claim, plan again, until nothing is left to claim (what the packager does)."""
    p = loss_plan(chunks, now, **kw)
    while p.claims:
        chunks = [*chunks, *claim_all(p)]
        p = loss_plan(chunks, now, **kw)
    return p, chunks


def test_given_the_encoder_goes_quiet_then_the_next_slot_is_slated_the_input_loss_wait_after_it_was_due() -> None:
    # 0 and 1 came at 2 and 4; 2 was due at 6 (when the encoder would have closed it) and never comes.
    chunks = [chunk(0), chunk(1)]
    waiting = loss_plan(chunks, now=8.9)
    assert listed(waiting) == ["r1/0", "r1/1"] and waiting.claims == ()
    assert waiting.recheck_at == at(9.0)  # 6 + 1.5 segments: a packager must come back then
    [claim] = loss_plan(chunks, now=9.0).claims
    assert (claim.seq, claim.reason, claim.v_start, claim.v_dur) == (2, "input loss", 2 * SEG, SEG)
    p, _ = settle(chunks, now=9.0)
    assert listed(p) == ["r1/0", "r1/1", "r1/2*"] and p.new_slates == ((1, 2),)
    assert not any(s.discontinuity for s in p.timeline.segments)
    assert p.recheck_at == at(11.0)  # the next slot, a segment later


def test_given_input_loss_goes_on_then_slate_stops_three_segments_past_the_last_real_chunk() -> None:
    p, _ = settle([chunk(0), chunk(1)], now=60.0)
    assert listed(p) == ["r1/0", "r1/1", "r1/2*", "r1/3*", "r1/4*"]
    assert p.claims == () and p.recheck_at is None  # the encoder stopped: the watchdog's turn


def test_given_a_missing_chunk_after_an_out_of_order_pair_then_it_is_slated_before_any_later_chunk_is_ready() -> None:
    # Soak seed 7, run 2: 4 came on time (at 10) and 3 just after it, then 5 never comes and 6/7 are
    # swapped: nothing later is even received when 5 is 1.5 segments overdue (due at 12).
    chunks = [chunk(0), chunk(1), chunk(2), chunk(3, arrived=10.05), chunk(4)]
    assert loss_plan(chunks, now=14.9).claims == ()
    [claim] = loss_plan(chunks, now=15.0).claims
    assert (claim.seq, claim.reason) == (5, "input loss")


def test_given_a_chunk_one_slot_out_of_order_then_input_loss_does_not_take_its_slot() -> None:
    # 2 is held back and comes a segment late, just after 3: it must play.
    chunks = [chunk(0), chunk(1), chunk(3, ready=8.5)]
    p = loss_plan(chunks, now=8.05)
    assert p.claims == () and listed(p) == ["r1/0", "r1/1"]
    after = loss_plan([*chunks, chunk(2, arrived=8.05, ready=8.6)], now=8.6)
    assert listed(after) == ["r1/0", "r1/1", "r1/2", "r1/3"]


def test_given_a_chunk_received_but_not_transcoded_then_input_loss_never_slates_it() -> None:
    chunks = [chunk(0), chunk(1), chunk(2, done=False)]
    p = loss_plan(chunks, now=30.0)
    assert p.claims == () and listed(p) == ["r1/0", "r1/1"]


def test_given_an_encoder_running_late_then_input_loss_counts_from_its_latest_chunk() -> None:
    # Every chunk arrives 2.5 s later than the run's clock says (a slow uploader): 2 is due at 6 by the
    # clock, but at 8.5 by the encoder's own cadence, and waits from there.
    chunks = [chunk(0), chunk(1, arrived=6.5)]
    assert loss_plan(chunks, now=11.0).claims == ()
    assert loss_plan(chunks, now=11.0).recheck_at == at(11.5)


def test_given_the_run_is_being_stopped_then_input_loss_adds_no_slate_after_its_last_chunk() -> None:
    p = loss_plan([chunk(0), chunk(1)], now=30.0, seal=[1], stop_at={1: at(5)}, seal_grace=6)
    assert p.claims == () and p.state.runs[0].sealed


def test_given_no_input_loss_wait_then_a_quiet_encoder_leaves_the_edge_where_it_is() -> None:
    p = run_plan([chunk(0), chunk(1)], now=60.0)
    assert p.claims == () and p.recheck_at is None


def test_the_input_loss_wait_is_the_channels_else_the_stages_else_one_and_a_half_segments() -> None:
    from chalicelib.pipeline.publish import input_loss_wait
    from chalicelib.records import ChannelRecord
    from chalicelib.settings import Settings

    plain = Settings.from_env({"TABLE_NAME": "t", "INGEST_BUCKET": "i", "ORIGIN_BUCKET": "o"})
    st = Settings.from_env({"TABLE_NAME": "t", "INGEST_BUCKET": "i", "ORIGIN_BUCKET": "o", "INPUT_LOSS_WAIT": "6"})
    off = Settings.from_env({"TABLE_NAME": "t", "INGEST_BUCKET": "i", "ORIGIN_BUCKET": "o", "INPUT_LOSS_WAIT": "0"})
    assert input_loss_wait(ChannelRecord(id="a", segment_duration=4.0), plain) == 6.0  # on by default
    assert input_loss_wait(ChannelRecord(id="a"), plain) == 1.5 * plain.segment_duration
    assert input_loss_wait(ChannelRecord(id="a", segment_duration=4.0), st) == 6.0
    assert input_loss_wait(ChannelRecord(id="a", input_loss_wait=5.0), off) == 5.0
    assert input_loss_wait(ChannelRecord(id="a"), off) is None
    assert input_loss_wait(ChannelRecord(id="a", input_loss_wait=-1.0), st) is None
    assert input_loss_wait(ChannelRecord(id="a", part_duration=0.5), st) is None  # LL: parts have their own rule


def test_given_a_chunk_whose_upload_reached_ingest_but_is_not_recorded_yet_then_input_loss_leaves_its_slot() -> None:
    # Soak seed 7: 5 swapped with 6 came 2.15 s after it was due (here at 14.15) and was still being probed
    # when the input-loss wait ran out (at 15): the encoder had delivered it, so it must play.
    chunks = [chunk(s) for s in range(5)]
    assert loss_plan(chunks, now=15.1).claims != ()
    p = loss_plan(chunks, now=15.1, seen={1: frozenset({5, 6})})
    assert p.claims == () and listed(p) == [f"r1/{s}" for s in range(5)]


def test_given_both_rules_apply_to_a_missing_slot_then_it_is_slated_at_the_earlier_deadline() -> None:
    # 5 never comes (it was due at 12, lost at 15); 6 is ready. The later-chunk rule slates 5 a wait after
    # 6 is ready (or once 5 is two waits overdue, at 16), input loss at 15: whichever comes first.
    on_time = [chunk(s) for s in range(5)]
    late_six = [*on_time, chunk(6, arrived=13.0, ready=14.0)]  # the later-chunk rule: at 16
    assert loss_plan(late_six, now=14.9).recheck_at == at(15.0)
    [claim] = loss_plan(late_six, now=15.0).claims
    assert (claim.seq, claim.reason) == (5, "input loss")
    early_six = [*on_time, chunk(6, arrived=10.5, ready=11.0)]  # the later-chunk rule: at 13
    assert loss_plan(early_six, now=12.9).recheck_at == at(13.0)
    [claim] = loss_plan(early_six, now=13.0).claims
    assert (claim.seq, claim.reason) == (5, "missing")
    # A slot whose chunk reached ingest is never input loss, whatever is ready after it: the later-chunk
    # rule alone decides it.
    assert loss_plan(late_six, now=15.0, seen={1: frozenset({5})}).claims == ()
    [claim] = loss_plan(late_six, now=16.0, seen={1: frozenset({5})}).claims
    assert (claim.seq, claim.reason) == (5, "missing")


def test_given_the_slots_upload_is_in_the_ingest_bucket_then_input_loss_waits_until_the_hold_ends() -> None:
    chunks = [chunk(s) for s in range(5)]  # 5 was lost at 15; its upload was found, held until 17
    held = {1: {5: at(17.0)}}
    p = loss_plan(chunks, now=15.0, held=held)
    assert p.claims == () and p.recheck_at == at(17.0)
    [claim] = loss_plan(chunks, now=17.0, held=held).claims
    assert (claim.seq, claim.reason) == (5, "input loss")
