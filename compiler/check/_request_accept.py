"""A fast, accept-only check of a request against one botocore input shape.

Every compile checks its lowered request with botocore's ParamValidator plus the strict
pass of `_botocore_check`. Both walk the request generically (ParamValidator dispatches by
name and builds path strings for every node) and cost more than lowering itself. Nearly
every request is valid, so each shape is compiled once into closures that answer one
question: do both checks certainly find nothing? "Yes" ends the check; "no" runs both,
which then name every problem. This module must be sound, never complete: it may send a
valid request to the full checks, but must never accept one either of them rejects.

The rules mirror botocore.validate (required and unknown members, tagged unions, types
by isinstance, `min` and host-label minimums) and the strict pass (enums, full-match
patterns, maximums, no bool for a number). Shapes it does not model (blobs, timestamps,
documents, JSON-value strings) never accept, and neither do tuples, Decimals or NaN
(ParamValidator takes them, the fast check leaves them to it). Every predicate checks
its value's exact type first, so a None anywhere is declined without a special case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Accept = Callable[[Any], bool]


def _never(_value: Any) -> bool:
    return False


def compile_shape(shape: Any, pattern_of: Callable[[str], Any]) -> Accept:
    """The accept predicate of `shape`; `pattern_of(text)` gives a compiled pattern or None
    for one the strict pass skips (see `_botocore_check._compile`)."""
    return _Compiler(pattern_of).compile(shape)


class _Compiler:
    def __init__(self, pattern_of: Callable[[str], Any]):
        self.pattern_of = pattern_of
        # Shapes may be recursive: a shape's predicate calls its members' through this
        # table, filled as each shape is compiled.
        self.table: dict[str, Accept] = {}

    def compile(self, shape: Any) -> Accept:
        name = shape.name
        known = self.table.get(name)
        if known is not None:
            return known
        self.table[name] = lambda value: self.table[name](value)  # until built
        build = getattr(self, f"_{shape.type_name}", None)
        special = shape.serialization.get("jsonvalue") or getattr(shape, "is_document_type", False)
        accept = _never if build is None or special else build(shape)
        self.table[name] = accept
        return accept

    def _structure(self, shape: Any) -> Accept:
        members = {name: self.compile(member) for name, member in shape.members.items()}
        required = tuple(shape.metadata.get("required", ()))
        union = bool(shape.is_tagged_union)

        def accept(value: Any) -> bool:
            if type(value) is not dict or (union and len(value) != 1):
                return False
            for name in required:
                if name not in value:
                    return False
            for key, item in value.items():
                member = members.get(key)
                if member is None or not member(item):
                    return False
            return True

        return accept

    def _list(self, shape: Any) -> Accept:
        low, high = _bounds(shape)
        member = self.compile(shape.member)

        def accept(value: Any) -> bool:
            return (
                type(value) is list
                and low <= len(value) <= high
                and all(member(item) for item in value)
            )

        return accept

    def _map(self, shape: Any) -> Accept:
        low, high = _bounds(shape)
        key_accept = self.compile(shape.key)
        value_accept = self.compile(shape.value)

        def accept(value: Any) -> bool:
            if type(value) is not dict or not low <= len(value) <= high:
                return False
            for key, item in value.items():
                if not key_accept(key) or not value_accept(item):
                    return False
            return True

        return accept

    def _string(self, shape: Any) -> Accept:
        low, high = _bounds(shape)
        allowed = frozenset(shape.metadata.get("enum", ())) or None
        pattern_text = shape.metadata.get("pattern", "")
        matches = _LazyMatch(pattern_text, self.pattern_of) if pattern_text else None

        def accept(value: Any) -> bool:
            return (
                type(value) is str
                and low <= len(value) <= high
                and (allowed is None or value in allowed)
                and (matches is None or matches(value))
            )

        return accept

    def _integer(self, shape: Any) -> Accept:
        return _number(shape, (int,))

    _long = _integer

    def _double(self, shape: Any) -> Accept:
        return _number(shape, (int, float))

    _float = _double

    def _boolean(self, shape: Any) -> Accept:
        return lambda value: type(value) is bool


class _LazyMatch:
    """Full match against a pattern compiled on first use: a request sets a few of the
    model's members, and compiling every pattern (some are whole Unicode categories)
    cost more than the rest of the check."""

    __slots__ = ("fullmatch", "pattern_of", "text")

    def __init__(self, text: str, pattern_of: Callable[[str], Any]):
        self.text = text
        self.pattern_of = pattern_of
        self.fullmatch: Callable[[str], Any] | None = None

    def __call__(self, value: str) -> bool:
        fullmatch = self.fullmatch
        if fullmatch is None:
            pattern = self.pattern_of(self.text)
            # A pattern the strict pass skips (None) checks nothing here either.
            fullmatch = self.fullmatch = pattern.fullmatch if pattern is not None else _anything
        return fullmatch(value) is not None


def _anything(_value: str) -> bool:
    return True


def _number(shape: Any, types: tuple[type, ...]) -> Accept:
    low, high = _bounds(shape)
    # Exact types: bool is an int to ParamValidator but an error to the strict pass.
    return lambda value: type(value) in types and low <= value <= high


def _bounds(shape: Any) -> tuple[float, float]:
    meta = shape.metadata
    low = meta.get("min")
    if low is None:
        # botocore's range_check: members bound to the host have an implicit min of 1.
        low = 1 if shape.serialization.get("hostLabel") else float("-inf")
    high = meta.get("max")
    return low, float("inf") if high is None else high
