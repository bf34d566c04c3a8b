"""A fast, accept-only check of a document against a cerberus schema: a spec or defaults
layer against the validator's (check/_validate.py), and the packaged instances and rules
files against their loaders' (catalog/_catalog.py, tuning/_autotune_rules.py).

Cerberus builds a child validator per nested field and costs ~1 ms per spec, the largest
share of a compile (and ~60 ms for the catalogs, besides ~10 ms to import). Most
documents are valid, so the schema is compiled once into plain
closures that answer one question: is this tree certainly valid? "Yes" skips cerberus;
"no" (or any rule this module does not know) runs cerberus, which then finds and locates
every problem. So this module only has to be sound, never complete: it may send a valid
tree to cerberus, but must never accept a tree cerberus would reject.

Rule semantics follow cerberus 1.3 (the pinned version), e.g. `regex` matches from the
start with `$` appended, types come from `TYPES` (cerberus's, with bool no integer), and `nullable`
values skip every value rule but `check_with`.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence, Sized
from typing import Any, NamedTuple

Check = Callable[[Any], bool]
# check_with name -> predicate; the validator reports the failures these find.
CheckWith = Mapping[str, Callable[[Any], str | None]]

_KNOWN_RULES = frozenset(
    {
        "type",
        "nullable",
        "allowed",
        "regex",
        "min",
        "max",
        "minlength",
        "maxlength",
        "schema",
        "keysrules",
        "valuesrules",
        "check_with",
        "excludes",
        "required",
        "empty",
    }
)


def _never(_value: Any) -> bool:
    return False


class _Unsupported(Exception):
    """The schema uses a rule this module does not implement."""


def compile_document(schema: Mapping[str, Mapping], checks: CheckWith) -> Check:
    """A predicate over a whole document (a top-level mapping) that `schema` describes."""
    try:
        fields = _compile_fields(schema, checks)
    except _Unsupported:
        return _never
    return lambda document: isinstance(document, dict) and _safe(fields, document)


def _safe(check: Check, value: Any) -> bool:
    try:
        return check(value)
    except Exception:  # any surprise means "not proven": cerberus decides
        return False


def _compile_fields(schema: Mapping[str, Mapping], checks: CheckWith) -> Check:
    """The check of a mapping's fields: no unknown keys, `required`, `excludes`, rules."""
    per_field = {name: _compile_rules(rules, checks) for name, rules in schema.items()}
    excludes = {
        name: _names(rules["excludes"]) for name, rules in schema.items() if "excludes" in rules
    }
    required = [name for name, rules in schema.items() if rules.get("required") is True]

    def check(document: dict) -> bool:
        for key, value in document.items():
            field_check = per_field.get(key)
            if field_check is None or not field_check(value):
                return False
            for other in excludes.get(key, ()):
                if other in document:
                    return False
        for name in required:
            # cerberus waives a required field that a present field excludes; a null
            # counts as missing (stricter than cerberus in places, which is allowed)
            if document.get(name) is None and not any(
                name in excludes.get(present, ()) and value is not None
                for present, value in document.items()
            ):
                return False
        return True

    return check


def _names(names: str | list[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _compile_rules(rules: Mapping[str, Any], checks: CheckWith) -> Check:
    """The check of one value under one field's rules."""
    if not rules.keys() <= _KNOWN_RULES:
        raise _Unsupported(sorted(rules.keys() - _KNOWN_RULES))
    steps: list[Check] = []
    if "type" in rules:
        steps.append(_type_check(rules["type"]))
    if "allowed" in rules:
        allowed = frozenset(rules["allowed"])
        steps.append(lambda value: isinstance(value, str) and value in allowed)
    if "regex" in rules:
        pattern = rules["regex"]
        matcher = re.compile(pattern if pattern.endswith("$") else pattern + "$").match
        steps.append(lambda value: not isinstance(value, str) or matcher(value) is not None)
    if rules.get("empty") is False:  # `empty: true` (the default) adds no condition
        steps.append(lambda value: not (isinstance(value, Sized) and len(value) == 0))
    if "min" in rules:
        low = rules["min"]
        steps.append(lambda value: not value < low)
    if "max" in rules:
        high = rules["max"]
        steps.append(lambda value: not value > high)
    if "minlength" in rules:
        shortest = rules["minlength"]
        steps.append(lambda value: len(value) >= shortest)
    if "maxlength" in rules:
        longest = rules["maxlength"]
        steps.append(lambda value: len(value) <= longest)
    nested = _nested_check(rules, checks)
    if nested is not None:
        steps.append(nested)
    check_with = _check_with(rules.get("check_with"), checks)
    nullable = rules.get("nullable") is True
    if check_with is None and len(steps) == 1:  # most fields: a type and nothing else
        only = steps[0]
        return lambda value: nullable if value is None else only(value)

    def check(value: Any) -> bool:
        if value is None:
            return nullable and (check_with is None or check_with(value))
        for step in steps:
            if not step(value):
                return False
        return check_with is None or check_with(value)

    return check


# For these exact types the answer of a type rule depends on the type alone, so it is
# worked out once; anything else (subclasses, other Mappings) takes the general path.
_PLAIN_TYPES = (str, int, float, bool, dict, list)


class TypeDefinition(NamedTuple):
    """cerberus.TypeDefinition's fields, so that a validator can use TYPES as its
    `types_mapping` without this module importing cerberus (~10 ms a process)."""

    name: str
    included_types: tuple
    excluded_types: tuple


# cerberus 1.3's types_mapping (tests/compiler/test_fast_accept.py compares them), but like
# the validators' (check/_validate.py, catalog/_catalog.py): `true` is not an integer,
# though Python's bool is an int.
TYPES = {
    "binary": TypeDefinition("binary", (bytes, bytearray), ()),
    "boolean": TypeDefinition("boolean", (bool,), ()),
    "container": TypeDefinition("container", (Container,), (str,)),
    "date": TypeDefinition("date", (datetime.date,), ()),
    "datetime": TypeDefinition("datetime", (datetime.datetime,), ()),
    "dict": TypeDefinition("dict", (Mapping,), ()),
    "float": TypeDefinition("float", (float, int), ()),
    "integer": TypeDefinition("integer", (int,), (bool,)),
    "list": TypeDefinition("list", (Sequence,), (str,)),
    "number": TypeDefinition("number", (int, float), (bool,)),
    "set": TypeDefinition("set", (set,), ()),
    "string": TypeDefinition("string", (str,), ()),
}


def _type_check(names: str | list[str]) -> Check:
    return _type_check_of(_names(names))


@functools.cache  # a schema has hundreds of type rules, of a few kinds
def _type_check_of(names: tuple[str, ...]) -> Check:
    definitions = [TYPES[name] for name in names]

    def general(value: Any) -> bool:
        return any(
            isinstance(value, d.included_types) and not isinstance(value, d.excluded_types)
            for d in definitions
        )

    passing = frozenset(t for t in _PLAIN_TYPES if general(t()))
    failing = frozenset(_PLAIN_TYPES) - passing
    return lambda value: type(value) in passing or (type(value) not in failing and general(value))


def _nested_check(rules: Mapping[str, Any], checks: CheckWith) -> Check | None:
    """The check of a container's contents, or None when there is nothing to check."""
    kind = rules.get("type")
    parts: list[Check] = []
    if "schema" in rules:
        if kind == "dict":
            fields = _compile_fields(rules["schema"], checks)
        elif kind == "list":
            fields = _compile_rules(rules["schema"], checks)
        else:
            raise _Unsupported(f"schema on type {kind}")
        parts.append(fields if kind == "dict" else lambda items: all(map(fields, items)))
    for rule, pick in (("keysrules", dict.keys), ("valuesrules", dict.values)):
        if rule in rules:
            if kind != "dict":
                raise _Unsupported(f"{rule} on type {kind}")
            item_check = _compile_rules(rules[rule], checks)
            parts.append(_each(item_check, pick))
    if not parts:
        return None
    if len(parts) == 1:
        part = parts[0]
        if kind == "dict":  # type() has already passed; cerberus accepts any Mapping
            return lambda tree: type(tree) is dict and part(tree)
        return lambda items: type(items) is list and part(items)
    if kind == "dict":
        return lambda tree: type(tree) is dict and all(part(tree) for part in parts)
    return lambda items: type(items) is list and all(part(items) for part in parts)


def _each(check: Check, pick: Callable[[dict[Any, Any]], Iterable[Any]]) -> Check:
    """`check` on every key (or value) of a dict."""
    return lambda tree: all(map(check, pick(tree)))


def _check_with(name: Any, checks: CheckWith) -> Check | None:
    if name is None:
        return None
    if not isinstance(name, str) or name not in checks:
        raise _Unsupported(f"check_with {name!r}")
    problem = checks[name]
    return lambda value: problem(value) is None
