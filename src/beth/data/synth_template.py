"""Process templates of the synthetic BETH hosts: what one process (or a few related ones) does, as data.

A `Template` is a list of `Block`s of `Ev` rows. One *instance* of a template is one run of it on one
host (a `ps` invocation, a cron job, an ssh connection): each block repeats a random number of times
per instance (`Block.reps`), each row a random number of times per repetition (`Ev.times`). Rows say
which process slot (`Proc`) emits them; slots are host daemons with fixed pids (systemd, journald)
or fresh processes whose pids the host allocates in time order. Argument values are constants or
per-row variables (`Var` integers, `Pool` strings, `Fmt` strings with holes) that the renderer
computes vectorised for all instances at once (`beth.data.synth_render`).

Argument names and types follow Tracee v0.5 (`beth.schema.events()`), as BETH recorded them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from beth.features import HOST_MOUNT_NAMESPACE as HOST_MNT  # BETH's hosts' own: 4026531840
from beth.schema import event_ids, events

#: Events whose BETH rows carry fewer arguments than Tracee v0.5's parameter list: BETH's
#: cap_capable has only `cap`, its execve only `pathname` and `argv` (argsNum 1 and 2).
SHORT_ARGS: dict[str, tuple[str, ...]] = {"cap_capable": ("cap",), "execve": ("pathname", "argv")}

#: Argument types that BETH records differently from host to host (Tracee's type strings were not
#: stable across its builds); each host draws one variant index. Keys: (event, argument).
TYPE_VARIANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("openat", "flags"): ("int", "unsigned int", "unsigned long"),
    ("security_file_open", "flags"): ("int", "unsigned int", "unsigned long"),
    ("openat", "mode"): ("mode_t", "int", "int*"),
    ("access", "mode"): ("mode_t", "int*", "int"),
    ("clone", "flags"): ("int", "unsigned long", "unsigned long"),
    ("getdents64", "count"): ("unsigned int", "size_t", "unsigned int"),
    ("socket", "type"): ("int", "const char*", "int"),
    ("setregid", "rgid"): ("gid_t", "gid_t*", "gid_t"),
    ("setregid", "egid"): ("gid_t", "gid_t*", "gid_t"),
}
N_TYPE_VARIANTS = 3


@dataclass(frozen=True)
class Var:
    """An integer that varies per row; `kind` is one of `synth_render.INT_VARS` (a, b: its parameters)."""

    kind: str
    a: int = 0
    b: int = 0


@dataclass(frozen=True)
class Pool:
    """A string from one of the host's pools (`synth_render.POOLS`), never containing quotes.

    `by` says which entry: the instance's own (`"inst"`, plus offset `a`), one per block repetition
    (`"rep"`), a random one per row (`"row"`), or the repetition's in pool order (`"seq"`: a + rep).
    """

    kind: str
    a: int = 0
    by: str = "inst"

    def __post_init__(self) -> None:
        if self.by not in ("inst", "rep", "row", "seq"):
            raise ValueError(f"Pool.by must be 'inst', 'rep', 'row' or 'seq', not {self.by!r}")


@dataclass(frozen=True)
class Fmt:
    """A string argument with `{}` holes filled by `parts` (e.g. `/proc/{}/stat` with a pid)."""

    text: str
    parts: tuple[Var | Pool, ...]

    def __post_init__(self) -> None:
        if self.text.count("{}") != len(self.parts):
            raise ValueError(f"{self.text!r}: {self.text.count('{}')} holes, {len(self.parts)} parts")
        if '"' in self.text or "\\" in self.text:
            raise ValueError(f"{self.text!r}: double quotes and backslashes are not supported")


Value = Union[int, str, list, Var, Pool, Fmt]  # noqa: UP007  (a runtime alias)


@dataclass(frozen=True)
class TypeSlot:
    """Placeholder for an argument type that depends on the host's type variant."""

    key: tuple[str, str]


Token = Union[str, Var, Pool, TypeSlot]  # noqa: UP007


@dataclass(frozen=True)
class Ev:
    """One row of a template: an event, its arguments and return value, who emits it and when.

    `dt` is the mean gap in seconds before this row (gamma-distributed, shape 2); `sleep` adds an
    exponential pause with that mean (think time in a shell). `times` repeats the row a random number
    of times per block repetition, and `p` makes it happen only with that probability. `comm`
    overrides the slot's process name (the rows of a forked child before its execve still carry the
    parent's name); `label` the slot's (sus, evil). `thread` is the offset of the thread id from the
    pid (an int, or a Var such as `Var('thread', n)` for one of n threads).
    """

    name: str
    args: tuple[tuple[str, Value], ...] = ()
    ret: int | Var = 0
    proc: int = 0
    thread: int | Var = 0
    comm: str | None = None
    dt: float = 6e-5
    sleep: float = 0.0
    times: tuple[int, int] = (1, 1)
    p: float = 1.0  # probability that the row happens at all (per block repetition)
    label: tuple[int, int] | None = None  # (sus, evil) of this row, if not its slot's

    @property
    def event_id(self) -> int:
        return event_ids()[self.name]

    @property
    def args_num(self) -> int:
        return len(self.args)

    def tokens(self) -> list[Token]:
        """The args text as literal pieces and holes (`Var`, `Pool`, `TypeSlot`), adjacent literals merged."""
        out: list[Token] = ["["]
        for i, (name, value) in enumerate(self.args):
            type_: str | TypeSlot = _arg_type(self.name, name)
            out += [", " if i else "", "{'name': ", repr(name), ", 'type': "]
            out += [type_] if isinstance(type_, TypeSlot) else [repr(type_)]
            out += [", 'value': ", *_value_tokens(value), "}"]
        out.append("]")
        merged: list[Token] = []
        for tok in out:
            if isinstance(tok, str) and merged and isinstance(merged[-1], str):
                merged[-1] += tok
            elif tok != "":
                merged.append(tok)
        return merged


def _arg_type(event: str, arg: str) -> str | TypeSlot:
    if (event, arg) in TYPE_VARIANTS:
        return TypeSlot((event, arg))
    params = dict((n, t) for t, n in events()[event_ids()[event]].params)
    return params[arg]


def _value_tokens(value: Value) -> list[Token]:
    if isinstance(value, Var):
        return [value]
    if isinstance(value, Pool):
        return ["'", value, "'"]
    if isinstance(value, Fmt):
        q = '"' if "'" in value.text else "'"
        pieces = value.text.split("{}")
        toks: list[Token] = [q + pieces[0]]
        for part, piece in zip(value.parts, pieces[1:], strict=True):
            toks += [part, piece]
        toks[-1] = str(toks[-1]) + q
        return toks
    if isinstance(value, bool) or not isinstance(value, int | str | list):
        raise TypeError(f"unsupported argument value {value!r}")
    return [repr(value)]


def ev(
    name: str,
    /,
    ret: int | Var = 0,
    *,
    proc: int = 0,
    thread: int | Var = 0,
    comm: str | None = None,
    dt: float = 6e-5,
    sleep: float = 0.0,
    times: tuple[int, int] = (1, 1),
    p: float = 1.0,
    label: tuple[int, int] | None = None,
    **args: Value,
) -> Ev:
    """Build an `Ev`, putting the arguments in Tracee's order and checking their names."""
    eid = event_ids().get(name)
    if eid is None:
        raise ValueError(f"unknown Tracee v0.5 event {name!r}")
    names = SHORT_ARGS.get(name) or events()[eid].argnames
    unknown = set(args) - set(names)
    missing = [n for n in names if n not in args]
    if unknown or missing:
        raise ValueError(f"{name}: unknown arguments {sorted(unknown)}, missing {missing}")
    return Ev(name, tuple((n, args[n]) for n in names), ret, proc, thread, comm, dt, sleep, times, p, label)


@dataclass(frozen=True)
class Block:
    """Rows that repeat together `reps` times (uniform in the inclusive range, drawn per instance)."""

    rows: tuple[Ev, ...]
    reps: tuple[int, int] = (1, 1)

    @property
    def mean_rows(self) -> float:
        per_rep = sum(e.p * (e.times[0] + e.times[1]) / 2 for e in self.rows)
        return per_rep * (self.reps[0] + self.reps[1]) / 2


@dataclass(frozen=True)
class Proc:
    """A process slot of a template.

    `pid` is `"fresh"` (allocated by the host in time order, `threads` more ids reserved after it for
    its threads), the key of a host daemon (`synth_hosts.DAEMONS`) or of a pid registered earlier on
    the host (`register`), or `"slot:K"`: the same process as slot K under another name, user or label
    (a forked child before and after its execve). `ppid` is a daemon key, or the index of another
    slot of the same template; None means the daemon's own parent. `label` is the slot's (sus, evil).
    """

    comm: str
    uid: int = 0
    mnt: int = HOST_MNT
    pid: str = "fresh"
    ppid: str | int | None = None
    threads: int = 0
    label: tuple[int, int] = (0, 0)
    register: str | None = None

    def __post_init__(self) -> None:
        if len(self.comm) > 15:
            raise ValueError(f"process name {self.comm!r} is longer than the kernel's 15 characters")
        if self.pid == "fresh" and self.ppid is None:
            raise ValueError(f"fresh process {self.comm!r} needs a parent")


@dataclass(frozen=True)
class Template:
    """A named sequence of blocks emitted by one or more process slots."""

    name: str
    procs: tuple[Proc, ...]
    blocks: tuple[Block, ...]
    rows: tuple[Ev, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(e for b in self.blocks for e in b.rows))
        for e in self.rows:
            if not 0 <= e.proc < len(self.procs):
                raise ValueError(f"{self.name}: row {e.name} names process slot {e.proc}")
            if e.comm is not None and len(e.comm) > 15:
                raise ValueError(f"{self.name}: process name {e.comm!r} is too long")

    @property
    def mean_rows(self) -> float:
        return sum(b.mean_rows for b in self.blocks)


def template(name: str, procs: list[Proc] | tuple[Proc, ...], *blocks: Block | list[Ev] | Ev) -> Template:
    """Build a Template; bare lists of rows and single rows become blocks that run once."""
    bs = tuple(
        b if isinstance(b, Block) else Block(tuple(b) if isinstance(b, list) else (b,)) for b in blocks
    )
    return Template(name, tuple(procs), bs)


def rep(rows: list[Ev] | Ev, lo: int, hi: int | None = None) -> Block:
    """A block of `rows` repeated between `lo` and `hi` times (exactly `lo` when `hi` is omitted)."""
    return Block(tuple(rows) if isinstance(rows, list) else (rows,), (lo, lo if hi is None else hi))


def composition(t: Template) -> dict[tuple[str, tuple[int, int]], float]:
    """Expected rows of one instance per (process name, label): calibrates budgets without sampling."""
    out: dict[tuple[str, tuple[int, int]], float] = {}
    for block in t.blocks:
        reps = (block.reps[0] + block.reps[1]) / 2
        for e in block.rows:
            proc = t.procs[e.proc]
            key = (e.comm or proc.comm, e.label or proc.label)
            out[key] = out.get(key, 0.0) + reps * e.p * (e.times[0] + e.times[1]) / 2
    return out
