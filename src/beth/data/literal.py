"""Python-literal fields of BETH files, parsed without `eval`.

BETH stores `args`, `stackAddresses` and the DNS list columns as Python `repr()` text: single-quoted
strings (double-quoted when the text holds a quote), ints, lists and dicts. This module parses that
subset with a small recursive-descent parser (bounded depth, no code execution) and writes it back
with `repr()`, which is exactly how the files were produced.
"""

from __future__ import annotations

import re
from typing import Any

_MAX_DEPTH = 8
_WS = re.compile(r"[ \t]*")
_INT = re.compile(r"[-+]?\d+")
_STR = {
    "'": re.compile(r"'((?:[^'\\\n]|\\.)*)'", re.S),
    '"': re.compile(r'"((?:[^"\\\n]|\\.)*)"', re.S),
}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[\\'\"abfnrtv0]|.)", re.S)
_SIMPLE_ESCAPES = {
    "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f",
    "n": "\n", "r": "\r", "t": "\t", "v": "\v", "0": "\0",
}  # fmt: skip
_CONSTANTS = {"None": None, "True": True, "False": False}


class LiteralError(ValueError):
    """A literal that does not parse; `offset` is the 0-based character position in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at character {offset + 1}")
        self.offset = offset


def _unescape(body: str, start: int) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        raise LiteralError(f"unknown escape \\{code}", start + m.start())

    return _ESCAPE.sub(one, body) if "\\" in body else body


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def expect(self, char: str) -> None:
        self.skip_ws()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of text"
        raise LiteralError(f"expected {char!r}, found {found}", self.pos)

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise LiteralError(f"nesting deeper than {_MAX_DEPTH}", self.pos)
        self.skip_ws()
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise LiteralError("unexpected end of text", pos)
        c = text[pos]
        if c in _STR:
            m = _STR[c].match(text, pos)
            if m is None:
                raise LiteralError("unterminated string", pos)
            self.pos = m.end()
            return _unescape(m.group(1), pos + 1)
        if c == "[":
            return self.sequence("]", depth)
        if c == "{":
            return self.mapping(depth)
        m = _INT.match(text, pos)
        if m is not None:
            self.pos = m.end()
            return int(m.group())
        for word, const in _CONSTANTS.items():
            if text.startswith(word, pos):
                self.pos = pos + len(word)
                return const
        raise LiteralError(f"unexpected {c!r}", pos)

    def sequence(self, close: str, depth: int) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        self.skip_ws()
        if self.text.startswith(close, self.pos):
            self.pos += 1
            return items
        while True:
            items.append(self.value(depth + 1))
            self.skip_ws()
            if self.text.startswith(close, self.pos):
                self.pos += 1
                return items
            self.expect(",")

    def mapping(self, depth: int) -> dict[Any, Any]:
        self.pos += 1
        out: dict[Any, Any] = {}
        self.skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return out
        while True:
            key = self.value(depth + 1)
            if isinstance(key, list | dict):
                raise LiteralError("unhashable dict key", self.pos)
            self.expect(":")
            out[key] = self.value(depth + 1)
            self.skip_ws()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return out
            self.expect(",")


def parse_literal(text: str) -> Any:
    """Parse one Python literal (str, int, list, dict, None, True, False); LiteralError if malformed."""
    parser = _Parser(text)
    result = parser.value(0)
    parser.skip_ws()
    if parser.pos != len(text):
        raise LiteralError("trailing text after the literal", parser.pos)
    return result


def parse_args(text: str) -> list[dict[str, Any]]:
    """Parse a Tracee `args` field: a list of `{'name', 'type', 'value'}` dicts."""
    value = parse_literal(text)
    if not isinstance(value, list):
        raise LiteralError("args must be a list", 0)
    for item in value:
        if not isinstance(item, dict) or not {"name", "type", "value"} <= item.keys():
            raise LiteralError("each argument must be a dict with 'name', 'type' and 'value'", 0)
    return value


def parse_str_list(text: str) -> list[str]:
    """Parse a list of strings such as `['52.95.19.240', '300']`; empty text is an empty list."""
    if not text.strip():
        return []
    value = parse_literal(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LiteralError("expected a list of strings", 0)
    return value


def arg_record(arg: dict[str, Any]) -> dict[str, Any]:
    """One parsed argument as a row of `schema.ARG_DTYPE` (lossless: `kind` keeps the value's type)."""
    value = arg["value"]
    if isinstance(value, bool) or value is None:
        raise LiteralError(f"argument {arg['name']!r} has unsupported value {value!r}", 0)
    if isinstance(value, int):
        return {"name": arg["name"], "type": arg["type"], "kind": "int", "value": str(value), "items": None}
    if isinstance(value, str):
        return {"name": arg["name"], "type": arg["type"], "kind": "str", "value": value, "items": None}
    if isinstance(value, list):
        return {"name": arg["name"], "type": arg["type"], "kind": "list", "value": None,
                "items": [v if isinstance(v, str) else repr(v) for v in value]}  # fmt: skip
    raise LiteralError(f"argument {arg['name']!r} has unsupported value {value!r}", 0)
