"""SequenceTracker: duplicates dropped, order restored, gaps declared and reported, late events kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from beth.transport.base import Delivery
from beth.transport.sequence import Gap, SequenceTracker


def d(seq: int, run: str = "r1", host: str = "h", kind: str = "process") -> Delivery:
    return Delivery(host, kind, run, seq, line=str(seq))


def seqs(items: list[Delivery]) -> list[int]:
    return [x.seq for x in items]


def test_in_order_deliveries_pass_straight_through() -> None:
    t = SequenceTracker()
    assert [seqs(t.offer(d(i), 0.0)) for i in (1, 2, 3)] == [[1], [2], [3]]
    assert t.held == 0


def test_duplicates_are_marked_done_and_counted_never_emitted() -> None:
    t = SequenceTracker()
    t.offer(d(1), 0)
    t.offer(d(2), 0)
    again = d(1)
    assert t.offer(again, 0) == [] and again.done
    t.offer(d(4), 0)  # held
    held_copy = d(4)
    assert t.offer(held_copy, 0) == [] and held_copy.done
    assert t.counts[("h", "process")].duplicates == 2


def test_early_deliveries_are_held_until_their_predecessors_arrive() -> None:
    t = SequenceTracker()
    assert t.offer(d(3), 0) == []
    assert t.offer(d(2), 0) == []
    assert seqs(t.offer(d(1), 0)) == [1, 2, 3]
    assert t.held == 0


def test_runs_and_hosts_are_numbered_independently() -> None:
    t = SequenceTracker()
    assert seqs(t.offer(d(1, run="a"), 0)) == [1]
    assert seqs(t.offer(d(1, run="b"), 0)) == [1]
    assert seqs(t.offer(d(1, host="other"), 0)) == [1]
    assert seqs(t.offer(d(1, kind="dns"), 0)) == [1]


def test_a_gap_is_declared_after_the_reorder_window_and_reported() -> None:
    gaps: list[Gap] = []
    t = SequenceTracker(reorder_window=2.0, on_gap=gaps.append)
    t.offer(d(1), 0.0)
    assert t.offer(d(5), 0.5) == []
    assert t.offer(d(6), 0.6) == []
    assert t.expire(2.0) == []  # not yet 2 s since the first held one
    assert seqs(t.expire(2.6)) == [5, 6]
    assert [(g.first, g.last, g.missing) for g in gaps] == [(2, 4, 3)]
    assert "3 event(s) missing (#2-#4)" in str(gaps[0])
    counts = t.counts[("h", "process")]
    assert (counts.gaps, counts.missing) == (1, 3)


def test_a_late_event_from_a_declared_gap_is_still_emitted_and_the_gap_shrinks() -> None:
    t = SequenceTracker(reorder_window=1.0)
    t.offer(d(1), 0)
    t.offer(d(4), 0)
    t.expire(5)
    assert seqs(t.offer(d(3), 6)) == [3]
    counts = t.counts[("h", "process")]
    assert (counts.late, counts.missing, counts.duplicates) == (1, 1, 0)
    assert t.state()[0]["gaps"] == [[2, 2]]
    dup = d(3)
    assert t.offer(dup, 7) == [] and dup.done  # a second copy is a duplicate


def test_too_many_held_deliveries_force_a_gap() -> None:
    t = SequenceTracker(max_held=3)
    t.offer(d(1), 0)
    out = [seqs(t.offer(d(i), 0)) for i in (10, 11, 12, 13)]
    assert out[-1] == [10, 11, 12, 13]


def test_state_round_trip_keeps_next_numbers_and_gaps() -> None:
    t = SequenceTracker(reorder_window=0)
    for i in (1, 2, 5):
        t.offer(d(i), 0)
    t.expire(1)
    restored = SequenceTracker()
    restored.restore(t.state(), t.counts, 0)
    late, dup = d(3), d(5)
    assert seqs(restored.offer(late, 0)) == [3]
    assert restored.offer(dup, 0) == [] and dup.done
    assert seqs(restored.offer(d(6), 0)) == [6]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.permutations(list(range(1, n + 1)) * 2)))
def test_any_arrival_order_with_copies_yields_each_number_once_in_order(arrivals: list[int]) -> None:
    t = SequenceTracker(reorder_window=1e9)
    out: list[int] = []
    for s in arrivals:
        out += seqs(t.offer(d(s), 0))
    assert out == sorted(set(arrivals))
    assert t.counts[("h", "process")].duplicates == len(arrivals) // 2
