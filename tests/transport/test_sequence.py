"""SequenceTracker: duplicates dropped, order restored, gaps declared and reported, late events kept."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from beth.transport.base import Delivery
from beth.transport.sequence import Gap, SequenceTracker


def d(seq: int, run: str = "r1", host: str = "h", kind: str = "process", n: int = 1) -> Delivery:
    """A delivery of the `n` events numbered seq, seq + 1, ..."""
    return Delivery(host, kind, run, seq, lines=[str(seq + i).encode() for i in range(n)])


def seqs(items: list[Delivery]) -> list[int]:
    """The event numbers in `items`, in order (each delivery holds a run of them)."""
    out = []
    for x in items:
        numbers = [int(line) for line in x.records()]
        assert numbers == list(range(x.seq, x.seq + x.count))  # a run of consecutive numbers
        out += numbers
    return out


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


def test_a_run_that_continues_its_stream_passes_whole_and_a_redelivered_one_is_dropped_whole() -> None:
    t = SequenceTracker()
    first, second = d(1, n=500), d(501, n=500)
    assert t.offer(first, 0) == [first] and t.offer(second, 0) == [second]  # not taken apart
    again = d(1, n=1000)
    assert t.offer(again, 0) == [] and again.done and again.parts is None
    assert t.counts[("h", "process")].duplicates == 1000


def test_a_run_that_overlaps_what_was_written_or_held_is_taken_apart() -> None:
    t = SequenceTracker()
    t.offer(d(1, n=10), 0)
    t.offer(d(15), 0)  # early: held
    straddling = d(8, n=10)  # 8..10 written before, 11..14 new, 15 held already, 16..17 new
    assert seqs(t.offer(straddling, 0)) == list(range(11, 18))
    assert straddling.parts is not None and len(straddling.parts) == 10
    assert [p.seq for p in straddling.parts if p.done] == [8, 9, 10, 15]  # the duplicates
    assert t.counts[("h", "process")].duplicates == 4 and t.held == 0
    assert not straddling.handled  # until the collector has written 11..17


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_runs_in_any_order_with_copies_yield_each_number_once_in_order(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 80))
    cuts = sorted(data.draw(st.sets(st.integers(2, n), max_size=12))) if n > 1 else []
    bounds = [1, *cuts, n + 1]
    runs = [(a, b - a) for a, b in pairwise(bounds)]  # the events, cut into runs
    extra = data.draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, 20)), max_size=6))
    runs += [(a, min(k, n + 1 - a)) for a, k in extra]  # redelivered windows, overlapping anything
    arrivals = data.draw(st.permutations(runs))
    t = SequenceTracker(reorder_window=1e9)
    out: list[int] = []
    for a, k in arrivals:
        out += seqs(t.offer(d(a, n=k), 0))
    assert out == list(range(1, n + 1))
    assert t.counts[("h", "process")].duplicates == sum(k for _, k in runs) - n
    assert t.held == 0
