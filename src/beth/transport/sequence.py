"""Per-sensor sequence numbers on the collector side: drop duplicates, restore order, report gaps.

Each (host, kind, run) stream numbers its events 1, 2, 3, ... A delivery (a run of consecutive
numbers, normally a whole fetch's worth of one stream) that starts at the next number is taken
whole; the rest is looked at event by event. An event whose number was already passed is a
duplicate (a redelivery after a crash, a publisher retry) and is dropped. One that arrives early (a
retry overtook it, or a reconnect replayed a window) is held until the numbers before it arrive, so
rows are written in sensor order. If the missing numbers have not come after `reorder_window`
seconds (or too many events are held), they are declared a gap, reported, and the held ones are
released. A number from a declared gap that turns up later is still written (late,
out of order) rather than lost, and the gap shrinks. Pure logic: no I/O, time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beth.transport.base import Delivery

Key = tuple[str, str]  # (host token, kind)


@dataclass
class Gap:
    """Sequence numbers `first`..`last` (inclusive) of one sensor run that never arrived."""

    host: str
    kind: str
    run: str
    first: int
    last: int

    @property
    def missing(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        span = f"#{self.first}" if self.first == self.last else f"#{self.first}-#{self.last}"
        return f"{self.host} {self.kind} run {self.run}: {self.missing} event(s) missing ({span})"


@dataclass
class StreamCounts:
    """What the collector saw of one host's log kind."""

    duplicates: int = 0
    late: int = 0
    missing: int = 0  # events in gaps still open
    gaps: int = 0  # gaps declared

    def to_record(self) -> dict[str, int]:
        return {"duplicates": self.duplicates, "late": self.late, "missing": self.missing, "gaps": self.gaps}


@dataclass
class _Run:
    next: int = 1  # the next sequence number to write
    held: dict[int, Delivery] = field(default_factory=dict)  # early single events by number
    held_since: float = 0.0
    gaps: list[list[int]] = field(default_factory=list)  # open gaps [first, last], oldest first
    last_seen: float = 0.0


class SequenceTracker:
    """Orders, de-duplicates and gap-checks deliveries of every (host, kind, run)."""

    def __init__(
        self,
        *,
        reorder_window: float = 2.0,
        max_held: int = 100_000,
        max_runs: int = 64,
        on_gap: Callable[[Gap], None] | None = None,
    ) -> None:
        self.reorder_window = reorder_window
        self.max_held = max_held
        self.max_runs = max_runs  # per (host, kind): older runs are forgotten beyond this
        self.on_gap = on_gap
        self._runs: dict[Key, dict[str, _Run]] = {}
        self._flat: dict[tuple[str, str, str], _Run] = {}  # (host, kind, run) -> state, the hot path
        self.counts: dict[Key, StreamCounts] = {}
        self.held = 0

    def _run(self, key: Key, run: str, now: float) -> _Run:
        state = self._flat.get((key[0], key[1], run))
        if state is not None:
            return state
        runs = self._runs.setdefault(key, {})
        state = runs[run] = _Run(last_seen=now)
        self._flat[(key[0], key[1], run)] = state
        self.counts.setdefault(key, StreamCounts())
        if len(runs) > self.max_runs:
            idle = [r for r, s in runs.items() if not s.held and r != run]
            for r in sorted(idle, key=lambda r: runs[r].last_seen)[: len(runs) - self.max_runs]:
                del runs[r]
                del self._flat[(key[0], key[1], r)]
        return state

    def offer(self, d: Delivery, now: float, ready: list[Delivery] | None = None) -> list[Delivery]:
        """Append the deliveries now ready to write, in order, to `ready` (a new list if None) and
        return it; duplicates are marked done.

        A delivery that continues its stream exactly (the normal case) goes through whole; one that
        was all written before (a redelivery) is dropped whole; anything else (early, late, partly
        seen) is taken apart and looked at event by event.
        """
        if ready is None:
            ready = []
        state = self._flat.get((d.host, d.kind, d.run)) or self._run((d.host, d.kind), d.run, now)
        state.last_seen = now
        if d.seq == state.next and not state.held:
            state.next += d.count
            ready.append(d)
        elif d.seq + d.count <= state.next and not state.gaps:
            self.counts[(d.host, d.kind)].duplicates += d.count
            d.done = True
        else:
            for part in d.split():
                self._offer_one(part, state, now, ready)
        return ready

    def _offer_one(self, d: Delivery, state: _Run, now: float, ready: list[Delivery]) -> None:
        """`offer` for a delivery of one event."""
        seq = d.seq
        if seq == state.next:
            state.next += 1
            ready.append(d)
            if state.held:
                ready.extend(self._drain(state))
            return
        key = (d.host, d.kind)
        if seq < state.next:
            if state.gaps and self._fill_gap(key, state, seq):
                self.counts[key].late += 1
                ready.append(d)
                return
            self.counts[key].duplicates += 1
            d.done = True
            return
        if seq in state.held:
            self.counts[key].duplicates += 1
            d.done = True
            return
        if not state.held:
            state.held_since = now
        state.held[seq] = d
        self.held += 1
        if len(state.held) > self.max_held:
            ready.extend(self._declare_gap(key, d.run, state))

    def expire(self, now: float, *, force: bool = False) -> list[Delivery]:
        """Release held deliveries whose predecessors are overdue (all of them with `force`)."""
        ready: list[Delivery] = []
        for key, runs in self._runs.items():
            for run, state in runs.items():
                while state.held and (force or now - state.held_since >= self.reorder_window):
                    ready.extend(self._declare_gap(key, run, state))
                    state.held_since = now
        return ready

    def _drain(self, state: _Run) -> list[Delivery]:
        out = []
        held = state.held
        while state.next in held:
            out.append(held.pop(state.next))
            state.next += 1
        self.held -= len(out)
        return out

    def _declare_gap(self, key: Key, run: str, state: _Run) -> list[Delivery]:
        first_held = min(state.held)
        gap = Gap(key[0], key[1], run, state.next, first_held - 1)
        state.gaps.append([gap.first, gap.last])
        counts = self.counts[key]
        counts.gaps += 1
        counts.missing += gap.missing
        state.next = first_held
        if self.on_gap is not None:
            self.on_gap(gap)
        return self._drain(state)

    def _fill_gap(self, key: Key, state: _Run, seq: int) -> bool:
        for i, (first, last) in enumerate(state.gaps):
            if first <= seq <= last:
                pieces = [[a, b] for a, b in ((first, seq - 1), (seq + 1, last)) if a <= b]
                state.gaps[i : i + 1] = pieces
                self.counts[key].missing -= 1
                return True
        return False

    # --- checkpoint ------------------------------------------------------------------------------

    def state(self) -> list[dict[str, Any]]:
        """What must survive a collector restart: per run, the next number to write and open gaps.

        Held deliveries are not part of it: they were not acknowledged and come again.
        """
        return [
            {"host": key[0], "kind": key[1], "run": run, "next": s.next, "gaps": [list(g) for g in s.gaps]}
            for key, runs in self._runs.items()
            for run, s in runs.items()
        ]

    def restore(self, records: list[dict[str, Any]], counts: dict[Key, StreamCounts], now: float) -> None:
        for r in records:
            key = (r["host"], r["kind"])
            state = self._run(key, r["run"], now)
            state.next, state.gaps = int(r["next"]), [list(g) for g in r["gaps"]]
        for key, c in counts.items():
            self.counts[key] = c
