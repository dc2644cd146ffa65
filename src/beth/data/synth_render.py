"""Turn streams of template instances into BETH rows, vectorised over all instances of a split.

A `Stream` is one template running on one host: instance start times, an optional row budget
(counted over all rows or only over rows with some label) at which the stream is cut, and an optional
label override. `render` expands every stream into rows (numpy: repeat/tile per block, no per-row
Python), hands out fresh pids per host in time order, evaluates the per-row variables, builds the
`args` and `stackAddresses` text with polars string concatenation (one pass per template row and
host type variant) and returns the 16 BETH columns with their exact types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from beth.data.synth_hosts import POOL_SIZE, Host
from beth.data.synth_template import TYPE_VARIANTS, Pool, Template, TypeSlot, Var
from beth.schema import PROCESS_DTYPES

COUNTS = ("all", "sus", "evil", "sus_only", "benign")


@dataclass
class Stream:
    """One template on one host: instances starting at `starts`, cut after `budget` counted rows."""

    template: Template
    host: Host
    starts: np.ndarray
    budget: int | None = None
    count: str = "all"  # which rows count toward the budget: one of COUNTS
    label: tuple[int, int] | None = None  # (sus, evil) for every row, overriding the slots' labels
    seed: int = 0  # the stream's own random stream: expanding it twice gives the same rows

    def __post_init__(self) -> None:
        if self.count not in COUNTS:
            raise ValueError(f"count must be one of {COUNTS}, not {self.count!r}")
        self.starts = np.sort(np.asarray(self.starts, dtype=np.float64))


# --- the spec table: every template row of the split, numbered ------------------------------------


class _Specs:
    """Per template row ('spec') arrays, for all templates used in one split."""

    def __init__(self, templates: list[Template], *, text: bool = True) -> None:
        self.offset: dict[int, int] = {}
        rows, slot_of, tmpl_of = [], [], []
        for t_i, t in enumerate(templates):
            self.offset[id(t)] = len(rows)
            rows += t.rows
            slot_of += [e.proc for e in t.rows]
            tmpl_of += [t_i] * len(t.rows)
        self.rows = rows
        self.event = np.array([e.event_id for e in rows], dtype=np.int64)
        self.name = [e.name for e in rows]
        self.args_num = np.array([e.args_num for e in rows], dtype=np.int64)
        self.proc = np.array(slot_of, dtype=np.int64)
        self.template = np.array(tmpl_of, dtype=np.int64)
        procs = [templates[t].procs[s] for t, s in zip(tmpl_of, slot_of, strict=True)]
        self.comm = [e.comm or p.comm for e, p in zip(rows, procs, strict=True)]
        self.uid = np.array([p.uid for p in procs], dtype=np.int64)
        self.mnt = np.array([p.mnt for p in procs], dtype=np.int64)
        labels = [e.label or p.label for e, p in zip(rows, procs, strict=True)]
        self.sus = np.array([lab[0] for lab in labels], dtype=np.int8)
        self.evil = np.array([lab[1] for lab in labels], dtype=np.int8)
        self.ret = np.array([e.ret if isinstance(e.ret, int) else 0 for e in rows], dtype=np.int64)
        self.thread = np.array([e.thread if isinstance(e.thread, int) else 0 for e in rows], dtype=np.int64)
        self.dt = np.array([e.dt for e in rows])
        self.sleep = np.array([e.sleep for e in rows])
        self.tokens = [e.tokens() for e in rows] if text else []


# --- expansion: instances -> rows -----------------------------------------------------------------


@dataclass
class _Expanded:
    inst: np.ndarray  # local instance index per row
    spec: np.ndarray  # local template-row index per row
    rep: np.ndarray  # block repetition index per row
    n_inst: int


def _expand(t: Template, n: int, rng: np.random.Generator) -> _Expanded:
    """All rows of n instances of t, instance-major (instance, block, repetition, row)."""
    insts, specs, reps = [], [], []
    base = 0
    for block in t.blocks:
        m = len(block.rows)
        lo, hi = block.reps
        r = rng.integers(lo, hi + 1, size=n) if hi > lo else np.full(n, lo, dtype=np.int64)
        total = int(r.sum())
        inst_b = np.repeat(np.arange(n), r)
        rep_b = np.arange(total) - np.repeat(np.cumsum(r) - r, r)
        inst_be = np.repeat(inst_b, m)
        rep_be = np.repeat(rep_b, m)
        spec_be = np.tile(np.arange(base, base + m), total)
        tlo = np.array([e.times[0] for e in block.rows])
        thi = np.array([e.times[1] for e in block.rows])
        prob = np.array([e.p for e in block.rows])
        if (thi != 1).any() or (tlo != 1).any() or (prob < 1).any():
            local = spec_be - base
            cnt = rng.integers(tlo[local], thi[local] + 1)
            cnt[rng.random(len(cnt)) >= prob[local]] = 0
            inst_be, rep_be, spec_be = (np.repeat(a, cnt) for a in (inst_be, rep_be, spec_be))
        insts.append(inst_be)
        specs.append(spec_be)
        reps.append(rep_be)
        base += m
    inst = np.concatenate(insts) if insts else np.zeros(0, np.int64)
    order = np.argsort(inst, kind="stable")
    return _Expanded(inst[order], np.concatenate(specs)[order], np.concatenate(reps)[order], n)


def _counted(stream: Stream, spec_sus: np.ndarray, spec_evil: np.ndarray) -> np.ndarray:
    if stream.label is not None:
        sus = np.full(len(spec_sus), stream.label[0], dtype=np.int8)
        evil = np.full(len(spec_sus), stream.label[1], dtype=np.int8)
    else:
        sus, evil = spec_sus, spec_evil
    return {
        "all": np.ones(len(sus), dtype=bool),
        "sus": sus == 1,
        "evil": evil == 1,
        "sus_only": (sus == 1) & (evil == 0),
        "benign": sus == 0,
    }[stream.count]


def expand_stream(stream: Stream) -> tuple[_Expanded, np.ndarray]:
    """The rows a stream keeps (local template-row indices) and its instance starts, reproducibly."""
    specs = _Specs([stream.template], text=False)
    ex = _expand_stream(stream, specs, commit=False)
    return ex, stream.starts[: ex.n_inst]


def label_counts(stream: Stream) -> dict[tuple[int, int], int]:
    """Rows per (sus, evil) that the stream will produce."""
    ex, _ = expand_stream(stream)
    if stream.label is not None:
        return {stream.label: len(ex.spec)}
    t = stream.template
    labels = [e.label or t.procs[e.proc].label for e in t.rows]
    out: dict[tuple[int, int], int] = {}
    for k, n in zip(*np.unique(ex.spec, return_counts=True), strict=True):
        out[labels[k]] = out.get(labels[k], 0) + int(n)
    return out


def _expand_stream(stream: Stream, specs: _Specs, *, commit: bool = True) -> _Expanded:
    """Expand a stream and cut it after its budget; more instances are added if it falls short."""
    rng = np.random.default_rng([stream.seed, 0x5EED])
    off = specs.offset[id(stream.template)]
    n_rows = len(stream.template.rows)
    counted = _counted(stream, specs.sus[off : off + n_rows], specs.evil[off : off + n_rows])
    starts = stream.starts
    while True:
        ex = _expand(stream.template, len(starts), rng)
        if stream.budget is None:
            break
        c = np.cumsum(counted[ex.spec])
        if len(c) and c[-1] >= stream.budget:
            cut = int(np.searchsorted(c, stream.budget)) + 1 if stream.budget else 0
            ex = _Expanded(ex.inst[:cut], ex.spec[:cut], ex.rep[:cut], ex.n_inst)
            break
        if not counted.any():
            raise ValueError(f"stream {stream.template.name}: no rows count toward its budget")
        # Not enough rows: continue the instance schedule at its own pace and try again.
        step = float(np.diff(starts).mean()) if len(starts) > 1 else 60.0
        more = max(len(starts), 1)
        starts = np.concatenate([starts, starts[-1] + step * np.arange(1, more + 1)])
    used = int(ex.inst.max()) + 1 if len(ex.inst) else 0
    if commit:
        stream.starts = starts[:used]
    return _Expanded(ex.inst, ex.spec + off, ex.rep, used)


# --- pids -------------------------------------------------------------------------------------------


def _allocate_pids(streams: list[Stream], inst_off: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pid and parent pid of every (instance, slot); returns slot_off (per instance), pid, ppid."""
    slot_counts = []
    for s in streams:
        slot_counts += [len(s.template.procs)] * len(s.starts)
    slot_off = np.concatenate([[0], np.cumsum(slot_counts)]).astype(np.int64)
    n_slots = int(slot_off[-1])
    pid = np.zeros(n_slots, dtype=np.int64)
    ppid = np.zeros(n_slots, dtype=np.int64)
    # Fresh pids: per host, in order of instance start, each slot takes 1 + threads ids, and the pid
    # counter also advances with time (processes that never show up in the log use pids too).
    by_host: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for s, i0 in zip(streams, inst_off, strict=True):
        n = len(s.starts)
        for k, p in enumerate(s.template.procs):
            idx = slot_off[i0 : i0 + n] + k
            if p.pid == "fresh":
                size = np.full(n, 1 + p.threads, dtype=np.int64)
                by_host.setdefault(s.host.index, []).append((idx, s.starts, size))
            elif p.pid in s.host.pids:
                pid[idx] = s.host.pids[p.pid]
            elif not p.pid.startswith("slot:"):
                continue
    hosts = {s.host.index: s.host for s in streams}
    top: dict[int, int] = {}
    for h, parts in by_host.items():
        host = hosts[h]
        idx = np.concatenate([p[0] for p in parts])
        start = np.concatenate([p[1] for p in parts])
        size = np.concatenate([p[2] for p in parts])
        order = np.lexsort((idx, start))
        idx, start, size = idx[order], start[order], size[order]
        counter = host.first_pid + np.cumsum(size) - size
        drift = np.floor(host.pid_rate * np.maximum(start - host.t0, 0.0)).astype(np.int64)
        pid[idx] = counter + drift
        top[h] = int((pid[idx] + size - 1).max())  # the highest id in use, threads included
    # Registered pids (a process that later streams on the same host refer to by name).
    named: dict[tuple[int, str], int] = {}
    latest: dict[tuple[int, str], float] = {}
    for s, i0 in zip(streams, inst_off, strict=True):
        for k, p in enumerate(s.template.procs):
            if p.register and len(s.starts):
                key = (s.host.index, p.register)
                last = len(s.starts) - 1  # the most recent registration wins
                if s.starts[last] >= latest.get(key, -np.inf):
                    latest[key] = float(s.starts[last])
                    named[key] = int(pid[slot_off[i0 + last] + k])
    # A name nobody registered on the host (its process started before the log, or its stream was
    # cut away at a small size) gets a fresh pid above every pid handed out so far.
    for s, i0 in zip(streams, inst_off, strict=True):
        n = len(s.starts)
        for k, p in enumerate(s.template.procs):
            if p.pid.startswith("slot:"):
                pid[slot_off[i0 : i0 + n] + k] = pid[slot_off[i0 : i0 + n] + int(p.pid[5:])]
            elif p.pid not in ("fresh", *s.host.pids):
                key = (s.host.index, p.pid)
                if key not in named:
                    top[s.host.index] = top.get(s.host.index, s.host.first_pid) + 1
                    named[key] = top[s.host.index]
                pid[slot_off[i0 : i0 + n] + k] = named[key]
    # Parents.
    for s, i0 in zip(streams, inst_off, strict=True):
        n = len(s.starts)
        base = slot_off[i0 : i0 + n]
        for k, p in enumerate(s.template.procs):
            if isinstance(p.ppid, int):
                ppid[base + k] = pid[base + p.ppid]
            elif p.ppid is not None:
                ppid[base + k] = s.host.pids.get(p.ppid) or named.get((s.host.index, p.ppid), 1)
            else:
                ppid[base + k] = s.host.parents.get(p.pid, 1)
    for s, i0 in zip(streams, inst_off, strict=True):  # a slot:K alias has K's parent unless told
        base = slot_off[i0 : i0 + len(s.starts)]
        for k, p in enumerate(s.template.procs):
            if p.pid.startswith("slot:") and p.ppid is None:
                ppid[base + k] = ppid[base + int(p.pid[5:])]
    return slot_off, pid, ppid


# --- the render -------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Row-space context the variables are computed from."""

    inst: np.ndarray
    rep: np.ndarray
    host: np.ndarray
    spec: np.ndarray
    slot_base: np.ndarray  # slot_off[inst]
    slot_pid: np.ndarray
    slot_ppid: np.ndarray
    inst_mode: np.ndarray
    inst_pool: np.ndarray
    inst_local: np.ndarray  # instance number within its stream
    scan: list[np.ndarray]  # per host
    rng: np.random.Generator


#: Integer variables: name -> (rows context, row indices, a, b) -> values.
def _iv_pid(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    return c.slot_pid[c.slot_base[i] + a]


def _iv_ppid(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    return c.slot_ppid[c.slot_base[i] + a]


def _iv_scan(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    out = np.empty(len(i), dtype=np.int64)
    hosts = c.host[i]
    for h in np.unique(hosts):
        sel = hosts == h
        table = c.scan[h]
        out[sel] = table[(c.rep[i[sel]] + a) % len(table)]
    return out


def _iv_rand(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    return c.rng.integers(a, b + 1, size=len(i))


def _iv_mode(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    return c.inst_mode[c.inst[i]]


def _iv_rep(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    return c.rep[i] + a


def _iv_thread(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    return c.rng.integers(b, a + 1, size=len(i)) if a else np.zeros(len(i), np.int64)


def _iv_local(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    """The instance's number within its stream, plus a (thread k of a process)."""
    return c.inst_local[c.inst[i]] + a


def _iv_pidrep(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    """pid of slot a plus the repetition number plus b (the tid of the thread a loop creates)."""
    return c.slot_pid[c.slot_base[i] + a] + c.rep[i] + b


def _iv_repval(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    """A value fixed for one block repetition of the instance: a + (hash(instance, rep) mod b)."""
    return a + (c.inst_mode[c.inst[i]] + c.rep[i] * 2654435761) % max(b, 1)


def _iv_inst(c: _Rows, i: np.ndarray, a: int, b: int) -> np.ndarray:
    """A value fixed for the instance: a + (per-instance hash mod b)."""
    return a + (c.inst_mode[c.inst[i]] % max(b, 1))


INT_VARS = {
    "pid": _iv_pid,
    "ppid": _iv_ppid,
    "scan": _iv_scan,
    "rand": _iv_rand,
    "mode": _iv_mode,
    "rep": _iv_rep,
    "thread": _iv_thread,
    "inst": _iv_inst,
    "local": _iv_local,
    "pidrep": _iv_pidrep,
    "repval": _iv_repval,
}
POOLS = ("ptr", "heap", "token", "ip", "kit")


def _int_var(v: Var, c: _Rows, i: np.ndarray) -> np.ndarray:
    fn = INT_VARS.get(v.kind)
    if fn is None:
        raise ValueError(f"unknown variable kind {v.kind!r}")
    return np.asarray(fn(c, i, v.a, v.b), dtype=np.int64)


def _pool_index(p: Pool, c: _Rows, i: np.ndarray) -> np.ndarray:
    if p.by == "row":
        local = c.rng.integers(0, POOL_SIZE, size=len(i))
    elif p.by == "seq":
        local = (p.a + c.rep[i]) % POOL_SIZE
    elif p.by == "rep":
        local = (c.inst_pool[c.inst[i]] + p.a + c.rep[i] * 7) % POOL_SIZE
    else:
        local = (c.inst_pool[c.inst[i]] + p.a) % POOL_SIZE
    return c.host[i] * POOL_SIZE + local


def _text(tokens: list, variant: int, c: _Rows, i: np.ndarray, pools: dict[str, pl.Series]) -> pl.Series:
    """One args text per row of i: the spec's literal pieces with its holes filled, concatenated."""
    n = len(i)
    lits = [
        t if isinstance(t, str) else repr(TYPE_VARIANTS[t.key][variant]) if isinstance(t, TypeSlot) else None
        for t in tokens
    ]
    if all(x is not None for x in lits):
        return pl.Series("args", ["".join(lits)]).gather(np.zeros(n, dtype=np.int64))  # type: ignore[arg-type]
    cols: dict[str, pl.Series] = {}
    exprs = []
    for k, (t, lit) in enumerate(zip(tokens, lits, strict=True)):
        if lit is not None:
            exprs.append(pl.lit(lit))
            continue
        name = f"h{k}"
        if isinstance(t, Var):
            cols[name] = pl.Series(name, _int_var(t, c, i)).cast(pl.String)
        else:
            cols[name] = pools[t.kind].gather(_pool_index(t, c, i)).alias(name)
        exprs.append(pl.col(name))
    return pl.DataFrame(cols).select(pl.concat_str(exprs).alias("args")).to_series()


def render(streams: list[Stream], hosts: list[Host], rng: np.random.Generator) -> pl.DataFrame:
    """All rows of the streams, with the raw BETH columns plus `_host` (host index) and `_ts_order`.

    Rows come back in no particular order; `order_rows` sorts them like the BETH files.
    """
    streams = [s for s in streams if len(s.starts) and (s.budget is None or s.budget > 0)]
    templates = list({id(s.template): s.template for s in streams}.values())
    specs = _Specs(templates)
    parts = [_expand_stream(s, specs) for s in streams]
    keep = [k for k, p in enumerate(parts) if p.n_inst > 0]
    streams, parts = [streams[k] for k in keep], [parts[k] for k in keep]
    inst_off = np.concatenate([[0], np.cumsum([p.n_inst for p in parts])]).astype(np.int64)
    n_inst = int(inst_off[-1])
    inst = np.concatenate([p.inst + o for p, o in zip(parts, inst_off, strict=False)])
    spec = np.concatenate([p.spec for p in parts])
    rep = np.concatenate([p.rep for p in parts])
    inst_start = np.concatenate([s.starts for s in streams])
    inst_host = np.concatenate([np.full(p.n_inst, s.host.index) for s, p in zip(streams, parts, strict=True)])
    inst_label = np.concatenate(
        [np.tile(np.array(s.label or (-1, -1)), (p.n_inst, 1)) for s, p in zip(streams, parts, strict=True)]
    ).reshape(-1, 2)
    n = len(inst)

    # Timestamps: gamma-distributed gaps within an instance (plus think-time sleeps), from its start.
    gaps = specs.dt[spec] * rng.gamma(2.0, 0.5, size=n)
    sleeps = specs.sleep[spec]
    has_sleep = sleeps > 0
    gaps[has_sleep] += rng.exponential(sleeps[has_sleep])
    first = np.ones(n, dtype=bool)
    first[1:] = inst[1:] != inst[:-1]
    gaps[first] = 0.0
    csum = np.cumsum(gaps)
    ts = inst_start[inst] + csum - csum[np.flatnonzero(first)][np.cumsum(first) - 1]

    slot_off, slot_pid, slot_ppid = _allocate_pids(streams, list(inst_off[:-1]))
    ctx = _Rows(
        inst=inst,
        rep=rep,
        host=inst_host[inst],
        spec=spec,
        slot_base=slot_off[inst],
        slot_pid=slot_pid,
        slot_ppid=slot_ppid,
        inst_mode=rng.integers(0x10000000, 0xFFFFFFFF, size=n_inst),
        inst_pool=rng.integers(0, POOL_SIZE, size=n_inst),
        inst_local=np.concatenate([np.arange(p.n_inst) for p in parts]),
        scan=[h.scan for h in hosts],
        rng=rng,
    )
    pools = {k: pl.Series(k, [s for h in hosts for s in h.pools[k]]) for k in POOLS}
    variants = np.array([h.variant for h in hosts])

    # Per template row: return values, thread offsets and args text (rows grouped by spec, variant).
    by_spec = np.argsort(spec, kind="stable")
    bounds = np.flatnonzero(np.diff(spec[by_spec])) + 1
    order_parts, texts = [], []
    ret = specs.ret[spec]
    tid_off = specs.thread[spec]
    for seg in np.split(by_spec, bounds):
        if not len(seg):
            continue
        s = int(spec[seg[0]])
        e = specs.rows[s]
        if isinstance(e.ret, Var):
            ret[seg] = _int_var(e.ret, ctx, seg)
        if isinstance(e.thread, Var):
            tid_off[seg] = _int_var(e.thread, ctx, seg)
        tokens = specs.tokens[s]
        if any(isinstance(t, TypeSlot) for t in tokens):
            v = variants[ctx.host[seg]]
            groups = [(int(x), seg[v == x]) for x in np.unique(v)]
        else:
            groups = [(0, seg)]
        for variant, idx in groups:
            order_parts.append(idx)
            texts.append(_text(tokens, variant, ctx, idx, pools))
    order = np.concatenate(order_parts)
    args = pl.concat(texts)

    o_inst, o_spec = inst[order], spec[order]
    base = slot_off[o_inst] + specs.proc[o_spec]
    pid = slot_pid[base]
    label = inst_label[o_inst]
    sus = np.where(label[:, 0] >= 0, label[:, 0], specs.sus[o_spec]).astype(np.int8)
    evil = np.where(label[:, 1] >= 0, label[:, 1], specs.evil[o_spec]).astype(np.int8)
    event = specs.event[o_spec]
    comm_codes, comm_names = _codes(specs.comm)
    name_codes, event_names = _codes(specs.name)
    host_names = [h.name for h in hosts]
    stacks = stack_text(o_inst, event, rng, n_inst)
    df = pl.DataFrame(
        {
            "timestamp": np.round(ts[order], 6),
            "processId": pid,
            "threadId": pid + tid_off[order],
            "parentProcessId": slot_ppid[base],
            "userId": specs.uid[o_spec],
            "mountNamespace": specs.mnt[o_spec],
            "processName": pl.Series(comm_names).gather(comm_codes[o_spec]),
            "hostName": pl.Series(host_names).gather(inst_host[o_inst]),
            "eventId": event,
            "eventName": pl.Series(event_names).gather(name_codes[o_spec]),
            "stackAddresses": stacks,
            "argsNum": specs.args_num[o_spec],
            "returnValue": ret[order],
            "args": args,
            "sus": sus,
            "evil": evil,
            "_host": inst_host[o_inst],
            "_seq": order,
        }
    )
    return df.with_columns(pl.col(c).cast(t) for c, t in PROCESS_DTYPES.items())


def _codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    uniq = sorted(set(values))
    index = {v: k for k, v in enumerate(uniq)}
    return np.array([index[v] for v in values], dtype=np.int64), uniq


# --- stack addresses --------------------------------------------------------------------------------

#: Stack trace lengths in the training split (beth-data-facts.md): 0: 521,115; 2: 109,594; 1: 65,545;
#: 3: 59,301; 4: 2,445; 20: 1,406; the other 3,738 rows have 5..19 frames.
STACK_LENGTHS = {0: 521_115, 1: 65_545, 2: 109_594, 3: 59_301, 4: 2_445, 20: 1_406, -1: 3_738}


def stack_text(inst: np.ndarray, event: np.ndarray, rng: np.random.Generator, n_inst: int) -> pl.Series:
    """`stackAddresses` text per row: Tracee's user-stack words, 0-20 of them, as a Python list.

    The first word is a return address in the process's libc (per-instance base + a per-event
    offset, so one process repeats its addresses), the next ones binary or libc addresses or stack
    garbage (ASCII bytes, or values above 2^63, as in BETH).
    """
    n = len(inst)
    p = np.array(list(STACK_LENGTHS.values()), dtype=np.float64)
    length = np.array(list(STACK_LENGTHS))[
        np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right")
    ]
    other = length == -1
    length[other] = rng.integers(5, 20, size=int(other.sum()))
    libc = rng.integers(0x7F00_0000_0, 0x7FFF_FFFF_F, size=n_inst, dtype=np.uint64) << np.uint64(12)
    binary = rng.integers(0x5500_0000_0, 0x56FF_FFFF_F, size=n_inst, dtype=np.uint64) << np.uint64(12)
    # Words only for the rows that have any (two thirds have none).
    rows = np.flatnonzero(length > 0)
    m, inst, depth = len(rows), inst[rows], length[rows]
    ev_off = (event[rows].astype(np.uint64) * np.uint64(0x9E37) + np.uint64(0x1A2B)) % np.uint64(0x1F_FFFF)
    words = np.empty((4, m), dtype=np.uint64)
    words[0] = libc[inst] + ev_off
    kind = rng.random((3, m))
    junk = rng.integers(0, 2**63 - 1, size=(3, m), dtype=np.uint64)
    junk[rng.random((3, m)) < 0.35] |= np.uint64(1 << 63)
    for k in range(1, 4):
        bin_word = binary[inst] + (ev_off * np.uint64(7 + k)) % np.uint64(0xF_FFFF)
        libc_word = libc[inst] + (ev_off * np.uint64(3 + k)) % np.uint64(0x1F_FFFF)
        words[k] = np.where(
            kind[k - 1] < 0.55, bin_word, np.where(kind[k - 1] < 0.85, libc_word, junk[k - 1])
        )
    cols = {f"w{k}": pl.Series(words[k]).cast(pl.String) for k in range(4)}
    cols["n"] = pl.Series(depth)
    sep = pl.lit(", ")
    w = [pl.col(f"w{k}") for k in range(4)]
    expr = (
        pl.when(pl.col("n") == 1)
        .then(pl.concat_str([pl.lit("["), w[0], pl.lit("]")]))
        .when(pl.col("n") == 2)
        .then(pl.concat_str([pl.lit("["), w[0], sep, w[1], pl.lit("]")]))
        .when(pl.col("n") == 3)
        .then(pl.concat_str([pl.lit("["), w[0], sep, w[1], sep, w[2], pl.lit("]")]))
        .otherwise(pl.concat_str([pl.lit("["), w[0], sep, w[1], sep, w[2], sep, w[3], pl.lit("]")]))
    )
    some = pl.DataFrame(cols).select(expr.alias("stackAddresses")).to_series()
    deep = np.flatnonzero(depth > 4)
    if len(deep):
        # Deep traces read down a stack frame by frame: descending words 16 bytes apart.
        tails = []
        for row, d in zip(deep.tolist(), depth[deep].tolist(), strict=True):
            head = [int(words[0, row]), int(words[1, row])]
            top = int(libc[inst[row]]) + 0x12E000
            tails.append("[" + ", ".join(map(str, head + [top - 16 * j for j in range(d - 2)])) + "]")
        some = some.scatter(deep, tails)
    return pl.Series("stackAddresses", ["[]"]).gather(np.zeros(n, dtype=np.int64)).scatter(rows, some)
