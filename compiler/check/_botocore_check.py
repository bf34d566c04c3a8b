"""Offline check of a lowered SageMaker request against botocore's bundled service model.

botocore's ParamValidator checks required keys, unknown keys, types and minimums; the
strict pass here adds what it skips and the service enforces: enum membership, `pattern`
(full match), maximum lengths and values, minimum sizes of maps, and no bool for a number.
The input shapes come from a table made from botocore's model (`_sagemaker_shapes`), so
the model itself loads only when the table is for another botocore. Each operation's
input shape is compiled once into plain nodes with precompiled regexes, and once into an
accept-only predicate that answers for both checks when a request is valid
(`_request_accept`): only a request it cannot vouch for is walked by ParamValidator and
the strict pass, which then name every problem.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from collections.abc import Mapping
from typing import Any

from trainspec.compiler._diagnostics import Diagnostic
from trainspec.compiler.catalog import data_file
from trainspec.compiler.check._request_accept import Accept, compile_shape
from trainspec.compiler.check._sagemaker_shapes import input_shape as table_input_shape
from trainspec.compiler.check._sagemaker_shapes import installed_botocore_version

_SERVICE = "sagemaker"
CODE = "sagemaker.request_invalid"

# ParamValidator's reasons -> our finer codes.
_PV_CODES = {
    "missing required field": f"{CODE}.missing_required",
    "unknown field": f"{CODE}.unknown_field",
    "invalid type": f"{CODE}.type",
    "invalid range": f"{CODE}.min_value",
    "invalid length": f"{CODE}.min_length",
    "empty input": f"{CODE}.union",
    "more than one input": f"{CODE}.union",
}


@functools.cache
def _model() -> Any:
    # botocore is imported here, not at module level: `trainspec compile` starts faster and
    # the compiler package stays free of AWS imports until a request is checked.
    import botocore.session

    return botocore.session.get_session().get_service_model(_SERVICE)


def botocore_version() -> str:
    """The version of botocore whose service model the checks use."""
    return installed_botocore_version()


def enum_values(shape_name: str) -> tuple[str, ...]:
    """The allowed values of a SageMaker enum shape, e.g. "TrainingInstanceType"."""
    return tuple(_model().shape_for(shape_name).enum)


# --- botocore patterns in Python `re` -----------------------------------------------------

# NOTE [Java patterns]: the service model's patterns are Java regexes. Python 3.11 `re`
# reads almost all of them (possessive quantifiers and atomic groups included); the rest
# use `\p{...}` categories, a surrogate-pair range for the supplementary planes, or a
# quantified `$`. Those are translated exactly below; anything else is skipped with a
# recorded reason rather than guessed at.
_SURROGATE_RANGE = "\\uD800\\uDC00-\\uDBFF\\uDFFF"
_POSIX = {"Alnum": "A-Za-z0-9", "Alpha": "A-Za-z", "Digit": "0-9", "Upper": "A-Z", "Lower": "a-z"}
_CATEGORY = re.compile(r"\\p\{([A-Za-z]+)\}")

# Patterns that could not be compiled, with the reason (for reports and tests).
skipped_patterns: dict[str, str] = {}


@functools.cache
def _category_ranges() -> Mapping[str, str]:
    """Character-class text for each one-letter Unicode category (L, M, N, P, S, Z, ...):
    from catalog/unicode_categories.json (tools/gen_unicode_categories.py) when it was
    made with this Python's Unicode version, else scanned (80 ms)."""
    ref = data_file("unicode_categories.json")
    data = json.loads(ref.read_text(encoding="utf-8"))
    if data.get("unidata_version") == unicodedata.unidata_version:
        return data["categories"]
    return scan_category_ranges()


def scan_category_ranges() -> dict[str, str]:
    """The category ranges, from a scan of every code point with `unicodedata`."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    category = unicodedata.category
    previous = ""
    start = 0
    for code in range(sys.maxunicode + 2):
        major = category(chr(code))[0] if code <= sys.maxunicode else ""
        if major != previous:
            if previous:
                ranges.setdefault(previous, []).append((start, code - 1))
            previous, start = major, code
    return {
        major: "".join(
            f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}" for low, high in spans
        )
        for major, spans in sorted(ranges.items())
    }


def _translate(pattern: str) -> str:
    text = pattern.replace(_SURROGATE_RANGE, "\\U00010000-\\U0010ffff")
    # `$` repeated ({1,128}) is still one end-of-input assertion under a full match.
    text = re.sub(r"\$\{\d+,\d+\}", "", text)

    def category(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _POSIX:
            return _POSIX[name]
        if len(name) == 1 and name in _category_ranges():
            return _category_ranges()[name]
        raise ValueError(f"unsupported class \\p{{{name}}}")

    return _CATEGORY.sub(category, text)


# One character class repeated, of one-letter categories and single characters, as tags'
# ([\p{L}\p{Z}\p{N}_.:/=+\-@]*). Translated, that class is ~1,400 code point ranges,
# which took `re` 7 ms to compile; testing each character's category is the same test.
_CATEGORY_STAR = re.compile(r"\(\[((?:\\p\{[CLMNPSZ]\}|\\-|[^\\\[\]\-])*)\]\*\)")


class _CategoryStar:
    """`fullmatch` of a _CATEGORY_STAR pattern, without a regex."""

    def __init__(self, items: str):
        self.categories = frozenset(re.findall(r"\\p\{([A-Z])\}", items))
        self.characters = frozenset(re.sub(r"\\p\{[A-Z]\}", "", items).replace("\\-", "-"))

    def fullmatch(self, value: str) -> _CategoryStar | None:
        category, categories, characters = unicodedata.category, self.categories, self.characters
        for char in value:
            if char not in characters and category(char)[0] not in categories:
                return None
        return self


@functools.cache
def _compile(pattern: str) -> re.Pattern[str] | _CategoryStar | None:
    try:
        return re.compile(pattern)
    except re.error:
        pass
    star = _CATEGORY_STAR.fullmatch(pattern)
    if star is not None:
        return _CategoryStar(star.group(1))
    try:
        return re.compile(_translate(pattern))
    except (re.error, ValueError) as error:
        skipped_patterns[pattern] = str(error)
        return None


# --- compiled shapes -----------------------------------------------------------------------


_UNSET = object()


class _Node:
    """One shape reduced to what the strict pass reads."""

    __slots__ = (
        "enum",
        "key",
        "kind",
        "max",
        "member",
        "members",
        "min",
        "name",
        "pattern",
        "pattern_text",
        "value",
    )

    def __init__(self, shape: Any):
        meta = shape.metadata
        self.name: str = shape.name
        self.kind: str = shape.type_name
        self.min = meta.get("min")
        self.max = meta.get("max")
        enum = meta.get("enum")
        self.enum: frozenset[str] | None = frozenset(enum) if enum else None
        self.pattern_text: str = meta.get("pattern", "")
        # `.*` and friends accept every string; skip the regex call for them.
        trivial = self.pattern_text in ("", ".*", "(.*)", "^.*$", "[\\s\\S]*")
        # Compiled on first use: some translations (Unicode categories) cost a moment.
        self.pattern: Any = None if trivial else _UNSET
        self.members: dict[str, _Node] = {}
        self.member: _Node | None = None
        self.key: _Node | None = None
        self.value: _Node | None = None


def _build(shape: Any, memo: dict[str, _Node]) -> _Node:
    node = memo.get(shape.name)
    if node is not None:
        return node
    node = memo[shape.name] = _Node(shape)  # registered first: shapes may be recursive
    if node.kind == "structure":
        node.members = {name: _build(member, memo) for name, member in shape.members.items()}
    elif node.kind == "list":
        node.member = _build(shape.member, memo)
    elif node.kind == "map":
        node.key = _build(shape.key, memo)
        node.value = _build(shape.value, memo)
    return node


@functools.cache
def _operation(operation: str) -> tuple[Any, _Node, Accept]:
    """(input shape, compiled node, accept predicate) for an operation name like
    CreateTrainingJob. The shape comes from the generated table (`_sagemaker_shapes`),
    or from botocore's model when the table is not for the installed botocore."""
    shape = table_input_shape(operation)
    if shape is None:
        shape = _model().operation_model(operation).input_shape
    memo: dict[str, _Node] = {}
    return shape, _build(shape, memo), compile_shape(shape, _compile)


def input_shape(operation: str) -> Any:
    """The input shape of a SageMaker operation such as CreateTrainingJob, as botocore's
    service model has it."""
    return _operation(operation)[0]


@functools.cache
def _param_validator() -> Any:
    from botocore.validate import ParamValidator

    return ParamValidator()


# --- the check -----------------------------------------------------------------------------


def check_request(operation: str, request: Mapping[str, Any]) -> list[Diagnostic]:
    """Every way `request` (boto3 kwargs) breaks `operation`'s input shape; [] when valid.

    An unknown operation name is itself reported (code sagemaker.unknown_operation).
    """
    try:
        shape, node, accept = _operation(operation)
    except Exception as error:  # botocore raises OperationNotFoundError and kin
        return [
            Diagnostic(
                "sagemaker.unknown_operation",
                "",
                f"botocore's SageMaker model has no operation {operation!r}",
                hint=type(error).__name__,
                value=operation,
            )
        ]
    if accept(request):
        return []
    return _full_check(shape, node, request)


def _full_check(shape: Any, node: _Node, request: Mapping[str, Any]) -> list[Diagnostic]:
    """ParamValidator, then the strict pass: every problem, located."""
    out: list[Diagnostic] = []
    report = _param_validator().validate(dict(request), shape)
    if report.has_errors():
        out.extend(_from_param_validator(error) for error in report._errors)
    _strict(request, node, "", out)
    return out


def _pv_path(name: str) -> str:
    # ParamValidator spells paths ".A.B", "A[0]" and "Map (key: k)".
    name = name[1:] if name.startswith(".") else name
    return re.sub(r" \(key: (.*)\)$", r".\1", name)


def _from_param_validator(error: tuple[str, str, dict[str, Any]]) -> Diagnostic:
    reason, name, extra = error
    path = _pv_path(name)
    code = _PV_CODES.get(reason, CODE)
    value: Any = extra.get("param")
    if reason == "missing required field":
        path = f"{path}.{extra['required_name']}" if path else extra["required_name"]
        message = "is required"
        value = None
    elif reason == "unknown field":
        path = f"{path}.{extra['unknown_param']}" if path else extra["unknown_param"]
        message = "is not a field of this request"
        value = extra["unknown_param"]
    elif reason == "invalid type":
        types = ", ".join(t.replace("<class '", "").replace("'>", "") for t in extra["valid_types"])
        message = f"must be of type {types}, not {type(value).__name__}"
    elif reason in ("invalid range", "invalid length"):
        what = "length" if reason == "invalid length" else "value"
        message = f"{what} must be at least {extra['min_allowed']}"
        if reason == "invalid length" and hasattr(value, "__len__"):
            value = len(value) if not isinstance(value, str) else value
    elif reason in ("empty input", "more than one input"):
        message = "must set exactly one of: " + ", ".join(extra.get("members", ()))
        value = None
    else:
        message = reason
    return Diagnostic(code, path, message, value=_plain(value))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _strict(value: Any, node: _Node, path: str, out: list[Diagnostic]) -> None:
    # Wrong types and None are ParamValidator's findings; this pass skips such values.
    kind = node.kind
    if kind == "structure":
        if isinstance(value, dict):
            members = node.members
            for key, item in value.items():
                child = members.get(key)
                if child is not None and item is not None:
                    _strict(item, child, f"{path}.{key}" if path else key, out)
    elif kind == "string":
        if isinstance(value, str):
            _check_string(value, node, path, out)
    elif kind == "list":
        if isinstance(value, list | tuple):
            _check_size(len(value), node, path, out, check_min=False)
            member = node.member  # set by _build for every list shape
            for index, item in enumerate(value):
                if item is not None and member is not None:
                    _strict(item, member, f"{path}[{index}]", out)
    elif kind == "map":
        if isinstance(value, dict):
            _check_size(len(value), node, path, out, check_min=True)
            key_node, value_node = node.key, node.value  # set by _build for every map shape
            for key, item in value.items():
                item_path = f"{path}.{key}"
                if isinstance(key, str) and key_node is not None:
                    _check_string(key, key_node, item_path, out, is_key=True)
                if item is not None and value_node is not None:
                    _strict(item, value_node, item_path, out)
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool):
            out.append(
                Diagnostic(f"{CODE}.type", path, "must be a number, not a bool", value=value)
            )
        elif isinstance(value, int | float) and node.max is not None and value > node.max:
            out.append(
                Diagnostic(f"{CODE}.max_value", path, f"must be at most {node.max}", value=value)
            )


def _check_size(
    size: int, node: _Node, path: str, out: list[Diagnostic], *, check_min: bool
) -> None:
    if node.max is not None and size > node.max:
        out.append(
            Diagnostic(
                f"{CODE}.max_length",
                path,
                f"has {size} entries, at most {node.max} allowed",
                value=size,
            )
        )
    # ParamValidator checks list minimums itself, but not map minimums.
    if check_min and node.min is not None and size < node.min:
        out.append(
            Diagnostic(
                f"{CODE}.min_length",
                path,
                f"has {size} entries, at least {node.min} required",
                value=size,
            )
        )


def _check_string(
    value: str, node: _Node, path: str, out: list[Diagnostic], *, is_key: bool = False
) -> None:
    subject = "key " if is_key else ""
    if node.max is not None and len(value) > node.max:
        out.append(
            Diagnostic(
                f"{CODE}.max_length",
                path,
                f"{subject}is {len(value)} characters long, at most {node.max} allowed",
                value=value,
            )
        )
    if node.enum is not None and value not in node.enum:
        allowed = sorted(node.enum)
        shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
        out.append(
            Diagnostic(
                f"{CODE}.enum",
                path,
                f"{subject}{value!r} is not a valid {node.name}",
                hint=f"one of: {shown}",
                value=value,
            )
        )
        return
    pattern = node.pattern
    if pattern is _UNSET:
        pattern = node.pattern = _compile(node.pattern_text)
    if pattern is not None and pattern.fullmatch(value) is None:
        out.append(
            Diagnostic(
                f"{CODE}.pattern",
                path,
                f"{subject}{value!r} does not match the pattern of {node.name}",
                hint=f"pattern: {node.pattern_text}",
                value=value,
            )
        )


__all__ = [
    "CODE",
    "botocore_version",
    "check_request",
    "enum_values",
    "input_shape",
    "skipped_patterns",
]
