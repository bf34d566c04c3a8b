"""The validate pass: sanity of one raw layer (spec, defaults file or --set) with cerberus.

The cerberus schema is derived from the proto descriptors (compiler/_fields.py) plus the
value rules in catalog/fields.yaml. Every problem becomes a located Diagnostic; no
cerberus type leaks past this module.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
    format_path,
)
from trainspec.compiler._fields import (
    FieldInfo,
    MessageInfo,
    job_spec,
    message_at,
    review_policy,
)
from trainspec.compiler.catalog._yaml_data import read_packaged_yaml
from trainspec.compiler.check._fast_accept import TYPES, compile_document
from trainspec.compiler.check._normalize import normalize

# What each named pattern means, for messages a user can act on.
_PATTERN_HELP = {
    "sagemaker_name": "letters, digits and hyphens, starting and ending in a letter or digit",
    "iam_role_arn": "an IAM role ARN like arn:aws:iam::123456789012:role/SageMakerRole",
    "aws_region": "an AWS region like us-east-1",
    "instance_type": "a SageMaker instance type like ml.p3.2xlarge",
    "kms_key": "a KMS key id, alias or ARN",
    "security_group": "a security group id like sg-0123abcd",
    "subnet": "a subnet id like subnet-0123abcd",
    "file_system_id": "a file system id like fs-0123456789abcdef0",
    "env_name": "an environment variable name (letters, digits, underscores)",
}

_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?")
# What an S3 URI with a slip in its scheme looks like: s3//, s3:/, s3:, S3://, s3a://.
# Not `s3/x`: a local folder may be called s3.
_S3_SLIP = re.compile(r"(?i)s3[an]?(?::[/\\]{0,2}|[/\\]{2})")
# Tag keys and values: Unicode letters, spaces and digits, and _.:/=+-@ (SageMaker's
# pattern uses \p{L}\p{Z}\p{N}, which Python's re cannot write).
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


@dataclass(frozen=True)
class Validated:
    """One layer after normalization and sanity validation."""

    path: str
    tree: Mapping[str, Any]
    locations: Mapping[FieldPath, Location]
    key_locations: Mapping[FieldPath, Location]

    def locate(self, path: FieldPath) -> Location:
        """The best location for a path: its own, else its nearest located parent, else
        the source as a whole (a gRPC JobSpec message has no lines to point at)."""
        for end in range(len(path), -1, -1):
            found = self.locations.get(path[:end])
            if found is not None:
                return found
        return Location(self.path)


@functools.cache
def field_rules() -> dict:
    return read_packaged_yaml("fields.yaml")


def _s3_uri(value: Any) -> str | None:
    if isinstance(value, str) and not _S3_URI.fullmatch(value):
        return "s3_typo" if s3_slip(value) else "s3_uri"
    return None


def s3_slip(value: str) -> str | None:
    """The S3 URI a value that starts like one but misspells the scheme probably meant."""
    match = _S3_SLIP.match(value)
    if match is None or value.startswith("s3://"):
        return None
    return "s3://" + value[match.end() :].lstrip("/\\")


def _local_or_s3(value: Any) -> str | None:
    """A local path or an S3 URI: only an S3 URI can be told wrong without the disk."""
    if not isinstance(value, str):
        return None
    if s3_slip(value):  # else `s3//bucket/x/` reads as a local folder that is missing
        return "s3_typo"
    if value.startswith("s3:") and not _S3_URI.fullmatch(value):
        return "s3_uri"
    return None


def _data_uri(value: Any) -> str | None:
    if isinstance(value, str) and not value.strip():
        return "empty"
    return _local_or_s3(value)


def _value(value: Any) -> str | None:
    """A hyperparameter value must fit google.protobuf.Value, a double."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return "number_too_large"
    if isinstance(value, float) and not math.isfinite(value):
        return "not_finite"
    return None


def _tag(value: Any) -> str | None:
    if isinstance(value, str) and not all(
        c in _TAG_PUNCTUATION or unicodedata.category(c)[0] in "LZN" for c in value
    ):
        return "tag_text"
    return None


def _positive(value: Any) -> str | None:
    return "positive" if isinstance(value, int | float) and value <= 0 else None


def _fraction(value: Any) -> str | None:
    return "fraction" if isinstance(value, int | float) and not 0 < value <= 1 else None


# catalog/fields.yaml `check:` names -> the problem a value has, or None.
_CHECKS = {
    "s3_uri": _s3_uri,
    "data_uri": _data_uri,
    "local_or_s3": _local_or_s3,
    "positive": _positive,
    "fraction": _fraction,
    "value": _value,
    "tag": _tag,
}


# NOTE [bounded problems]: cerberus sorts a validator's whole error list each time it adds
# one, so a layer with N problems cost O(N^2) (2000 unknown keys: 5 s; a server's caller
# chooses N). Past MAX_PROBLEMS, problems are counted and not kept: the report is the
# first ones and "and N more". The schema has no *of rules, so a dropped error never
# decides whether a document is valid: one over the limit is invalid already.
MAX_PROBLEMS = 100


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_PROBLEMS
        self.dropped = 0


@functools.cache
def _validator_class() -> type:
    """The cerberus validator, defined on first use: a valid layer never needs cerberus
    (`_fast_accept` proves it), and importing cerberus cost every process ~10 ms."""
    import cerberus
    from cerberus import errors as cerberus_errors

    class _Validator(cerberus.Validator):
        types_mapping = TYPES  # `true` is no integer (Python's bool is an int)

        def _error(self, *args: Any) -> None:
            # A group (a child validator's errors, added by its parent) holds problems that
            # were counted when the child found them.
            grouped = len(args) == 1 or (
                not isinstance(args[1], str) and args[1].code & cerberus_errors.ERROR_GROUP.code
            )
            if not grouped:
                budget = _per_thread.budget
                if budget.left <= 0:
                    budget.dropped += 1
                    return
                budget.left -= 1
            super()._error(*args)

        def _check_with_s3_uri(self, field: str, value: Any) -> None:
            self._report(field, _s3_uri(value))

        def _check_with_data_uri(self, field: str, value: Any) -> None:
            self._report(field, _data_uri(value))

        def _check_with_local_or_s3(self, field: str, value: Any) -> None:
            self._report(field, _local_or_s3(value))

        def _check_with_positive(self, field: str, value: Any) -> None:
            self._report(field, _positive(value))

        def _check_with_fraction(self, field: str, value: Any) -> None:
            self._report(field, _fraction(value))

        def _check_with_value(self, field: str, value: Any) -> None:
            self._report(field, _value(value))

        def _check_with_tag(self, field: str, value: Any) -> None:
            self._report(field, _tag(value))

        def _report(self, field: str, problem: str | None) -> None:
            if problem is not None:
                self._error(field, problem)

        # NOTE [over the limit]: a map or list longer than its `maxlength` is reported as too
        # long, and its entries are not walked: rejecting 1000 hyperparameters must cost what
        # rejecting 101 does, not 30 compiles' worth of per-entry child validators.
        def _over_limit(self, field: str, value: Any) -> bool:
            limit = (self.schema.get(field) or {}).get("maxlength")
            return limit is not None and isinstance(value, dict | list) and len(value) > limit

        def _validate_keysrules(self, schema, field, value):
            """{'type': ['dict', 'string'], 'check_with': 'bulk_schema',
            'forbidden': ['rename', 'rename_handler']}"""
            if not self._over_limit(field, value):
                super()._validate_keysrules(schema, field, value)

        def _validate_valuesrules(self, schema, field, value):
            """{'type': ['dict', 'string'], 'check_with': 'bulk_schema',
            'forbidden': ['rename', 'rename_handler']}"""
            if not self._over_limit(field, value):
                super()._validate_valuesrules(schema, field, value)

        def _validate_schema(self, schema, field, value):
            """{'type': ['dict', 'string'], 'anyof': [{'check_with': 'schema'},
            {'check_with': 'bulk_schema'}]}"""
            if not self._over_limit(field, value):
                super()._validate_schema(schema, field, value)

    return _Validator


def _rules_for(message: MessageInfo, name: str) -> dict:
    return field_rules()["rules"].get(message.full_name, {}).get(name, {})


def _item_schema(field: FieldInfo) -> dict:
    kind = field.item_kind or field.kind  # lists and maps describe their items
    if kind == "message":
        assert field.message is not None
        return _message_schema(field.message)
    if kind == "enum":
        assert field.enum is not None
        return {"type": "string", "allowed": list(field.enum.values)}
    if kind == "value":  # hyperparameter values: scalars
        return {"type": ["string", "number", "boolean"], "check_with": "value"}
    if field.bounds is not None:  # what the proto type holds; rules may narrow it
        return {"type": field.scalar, "min": field.bounds[0], "max": field.bounds[1]}
    return {"type": field.scalar}


def _field_schema(message: MessageInfo, field: FieldInfo) -> dict:
    rules = _rules_for(message, field.name)
    patterns = field_rules()["patterns"]
    if field.kind == "map":
        schema: dict = {
            "type": "dict",
            "keysrules": {"type": "string", "minlength": 1},
            "valuesrules": _item_schema(field),
        }
        if "keys_pattern" in rules:
            schema["keysrules"]["regex"] = patterns[rules["keys_pattern"]]
        if "key_maxlength" in rules:
            schema["keysrules"]["maxlength"] = rules["key_maxlength"]
        if "keys_check" in rules:
            schema["keysrules"]["check_with"] = rules["keys_check"]
        if field.item_kind == "scalar":  # a fresh dict: message items share theirs
            for rule in ("value_maxlength", "values_check"):
                if rule in rules:
                    key = "maxlength" if rule == "value_maxlength" else "check_with"
                    schema["valuesrules"][key] = rules[rule]
    elif field.kind == "list":
        schema = {"type": "list", "schema": _item_schema(field)}
        if "item_pattern" in rules:
            schema["schema"]["regex"] = patterns[rules["item_pattern"]]
        if "item_maxlength" in rules:
            schema["schema"]["maxlength"] = rules["item_maxlength"]
        if "item_allowed" in rules:
            schema["schema"]["allowed"] = rules["item_allowed"]
    elif field.kind == "message":
        assert field.message is not None
        schema = _message_schema(field.message)
    else:
        schema = _item_schema(field)
    for key in ("min", "max", "minlength", "maxlength", "allowed"):
        if key in rules:
            schema[key] = rules[key]
    if "pattern" in rules:
        schema["regex"] = patterns[rules["pattern"]]
    if "check" in rules:
        schema["check_with"] = rules["check"]
    members = message.oneofs.get(field.oneof, ())
    if len(members) > 1:
        schema["excludes"] = [m for m in members if m != field.name]
    schema["nullable"] = True  # null clears a lower layer's value
    return schema


@functools.cache
def _message_schema_cached(full_name: str) -> dict:
    message = _messages()[full_name]
    return {
        "type": "dict",
        "schema": {name: _field_schema(message, field) for name, field in message.fields.items()},
    }


def _message_schema(message: MessageInfo) -> dict:
    return _message_schema_cached(message.full_name)


@functools.cache
def _messages() -> dict[str, MessageInfo]:
    found: dict[str, MessageInfo] = {}

    def walk(message: MessageInfo) -> None:
        if message.full_name in found:
            return
        found[message.full_name] = message
        for field in message.fields.values():
            if field.message is not None:
                walk(field.message)

    walk(job_spec())
    walk(review_policy())
    return found


def _schema(kind: str) -> dict:
    fields = _message_schema(job_spec())["schema"]
    if kind == "spec":
        return {
            "training": {**fields["training"], "excludes": "tuning", "required": True},
            "tuning": {**fields["tuning"], "excludes": "training", "required": True},
        }
    return {  # an organisation defaults file
        "training": fields["training"],
        "tuning": fields["tuning"],
        "catalog": {"type": "dict", "nullable": True},
        # Settings of `trainspec run --local` that are not part of any job.
        "local": {
            "type": "dict",
            "nullable": True,
            "schema": {"tuning_storage": {"type": "string", "nullable": True}},
        },
        # What `trainspec diff` flags as risks; no job reads it.
        "review": {**_message_schema(review_policy()), "nullable": True},
    }


# A cerberus Validator keeps the document being validated on itself, so one instance
# must never serve two threads at once (the gRPC server compiles on several).
_per_thread = threading.local()


def _validator(kind: str) -> Any:
    validators = _per_thread.__dict__.setdefault("validators", {})
    validator = validators.get(kind)
    if validator is None:
        validator = validators[kind] = _validator_class()(_schema_cached(kind))
    return validator


@functools.cache
def _schema_cached(kind: str) -> dict:
    return _schema(kind)


@functools.cache
def _accepts(kind: str) -> Callable[[Any], bool]:
    return compile_document(_schema_cached(kind), _CHECKS)


def validate_layer(
    path: str,
    tree: Any,
    locations: Mapping[FieldPath, Location],
    key_locations: Mapping[FieldPath, Location],
    *,
    kind: str = "spec",
) -> Validated:
    """Normalize and check one layer (`kind` "spec" or "defaults"); raise SpecError."""
    tree, locations, key_locations = normalize(tree, job_spec(), locations, key_locations)
    layer = Validated(path, tree, locations, key_locations)
    if _accepts(kind)(tree):  # the common case, proven valid without cerberus
        return layer
    validator = _validator(kind)
    budget = _per_thread.budget = _Budget()
    if not validator.validate(tree, normalize=False):
        problems = _diagnostics(validator._errors, layer, kind)
        if budget.dropped:
            problems.append(_more_problems(budget.dropped, layer.path))
        raise SpecError(problems)
    return layer


def _more_problems(count: int, path: str) -> Diagnostic:
    return Diagnostic(
        "spec.more_problems",
        "",
        f"and {count} more problem(s) not listed (the first {MAX_PROBLEMS} are)",
        hint="fix these and validate again",
        location=Location(path),
    )


def _leaf_errors(errors: Iterable[Any]) -> list[Any]:
    out = []
    for error in errors:
        if error.is_group_error:
            out.extend(_leaf_errors(error.child_errors))
        else:
            out.append(error)
    return out


def _diagnostics(errors: Iterable[Any], layer: Validated, kind: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for error in _leaf_errors(errors):
        diagnostic = _diagnostic(error, layer, kind)
        key = (diagnostic.code, diagnostic.field_path)
        if key not in seen:  # excludes rules fire on both members of a oneof
            seen.add(key)
            out.append(diagnostic)
    return out


def _diagnostic(error: Any, layer: Validated, kind: str) -> Diagnostic:
    from cerberus import errors as cerberus_errors

    path: FieldPath = tuple(error.document_path)
    field_path = format_path(path)
    value = error.value
    location = layer.locate(path)
    code = error.code
    if code == cerberus_errors.UNKNOWN_FIELD.code:
        return _unknown_field(path, layer, kind)
    if code == cerberus_errors.REQUIRED_FIELD.code:
        return Diagnostic(
            "spec.empty_job",
            "",
            "the spec names no job",
            hint="start the file with `training:` or `tuning:`",
            location=Location(layer.path, 1, 1),
        )
    if code == cerberus_errors.EXCLUDES_FIELD.code:
        return _excludes(path, layer, kind)
    if code == cerberus_errors.BAD_TYPE.code:
        expected = error.constraint
        return Diagnostic(
            "spec.type",
            field_path,
            f"expected {_type_words(expected)}, got {_describe(value)}",
            hint=_type_hint(expected, value),
            location=location,
            value=value,
        )
    if code == cerberus_errors.UNALLOWED_VALUE.code:
        allowed = [_short(v) for v in error.constraint]
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        return Diagnostic(
            "spec.enum",
            field_path,
            f"{value!r} is not one of {', '.join(allowed)}",
            hint=f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(allowed)}",
            location=location,
            value=value,
        )
    if code == cerberus_errors.REGEX_MISMATCH.code:
        name = next((k for k, v in field_rules()["patterns"].items() if v == error.constraint), "")
        help_text = _PATTERN_HELP.get(name, f"the pattern {error.constraint}")
        return Diagnostic(
            f"spec.pattern.{name}" if name else "spec.pattern",
            field_path,
            f"{value!r} is not {help_text}" if name else f"{value!r} does not match {help_text}",
            hint=_pattern_hint(name, value),
            location=location,
            value=value,
        )
    if code in (cerberus_errors.MIN_VALUE.code, cerberus_errors.MAX_VALUE.code):
        word = "at least" if code == cerberus_errors.MIN_VALUE.code else "at most"
        return Diagnostic(
            "spec.out_of_range",
            field_path,
            f"{value!r} is out of range: must be {word} {error.constraint}",
            hint=_range_hint(path),
            location=location,
            value=value,
        )
    if code in (cerberus_errors.MIN_LENGTH.code, cerberus_errors.MAX_LENGTH.code):
        word = "at least" if code == cerberus_errors.MIN_LENGTH.code else "at most"
        unit = "entries" if isinstance(value, dict | list) else "characters"
        return Diagnostic(
            "spec.length",
            field_path,
            f"has {len(value)} {unit}; must have {word} {error.constraint}",
            hint=_length_hint(path, word),
            location=location,
            value=value if isinstance(value, str) else None,
        )
    if code == cerberus_errors.CUSTOM.code:
        return _custom(error.info[0] if error.info else "", path, value, location)
    return Diagnostic(  # a cerberus rule we did not expect: still a located diagnostic
        "spec.invalid",
        field_path,
        f"invalid value {_describe(value)}",
        location=location,
        value=value,
    )


def _custom(check: str, path: FieldPath, value: Any, location: Location | None) -> Diagnostic:
    messages = {
        "s3_uri": (
            "spec.s3_uri",
            f"{value!r} is not a valid S3 URI",
            "write s3://bucket-name/prefix/ (bucket names are 3-63 lower-case letters, "
            "digits, dots and hyphens)",
        ),
        "empty": ("spec.empty", "must not be empty", "remove the field or give a value"),
        "s3_typo": (
            "spec.s3_uri",
            f"{value!r} looks like a mistyped S3 URI",
            f"did you mean {s3_slip(value)!r}?" if isinstance(value, str) else "",
        ),
        "number_too_large": (
            "spec.out_of_range",
            "is too large for a number (a double, about 1.8e308 at most)",
            "write it as a string in quotes",
        ),
        "not_finite": (
            "spec.out_of_range",
            f"{value!r} is not a finite number",
            "SageMaker takes a number such as 1e30, or a string in quotes",
        ),
        "tag_text": (
            "spec.pattern.tag",
            f"{value!r} has characters AWS tags do not allow",
            "use letters, digits, spaces and _ . : / = + - @",
        ),
        "positive": ("spec.out_of_range", f"{value!r} must be greater than 0", ""),
        "fraction": ("spec.out_of_range", f"{value!r} must be in (0, 1]", ""),
    }
    code, message, hint = messages.get(check, ("spec.invalid", f"invalid ({check})", ""))
    return Diagnostic(code, format_path(path), message, hint, location, value)


def _unknown_field(path: FieldPath, layer: Validated, kind: str) -> Diagnostic:
    parent = path[:-1]
    name = str(path[-1])
    candidates = _known_names(parent, kind)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif candidates:
        hint = "valid fields here: " + ", ".join(sorted(candidates))
    else:
        hint = ""
    return Diagnostic(
        "spec.unknown_field",
        format_path(path),
        f"unknown field {name!r}",
        hint=hint,
        location=layer.key_locations.get(path) or layer.locate(path),
    )


def _known_names(parent: FieldPath, kind: str) -> list[str]:
    if parent == ():
        return ["training", "tuning"] + (
            ["catalog", "local", "review"] if kind == "defaults" else []
        )
    message = message_at(parent)
    return list(message.fields) if message else []


def _excludes(path: FieldPath, layer: Validated, kind: str) -> Diagnostic:
    parent = path[:-1]
    if parent == ():
        return Diagnostic(
            "spec.both_jobs",
            "",
            "the spec has both `training` and `tuning`",
            hint="one job per file: a tuning job holds its training job under `tuning.training`",
            location=layer.key_locations.get(("tuning",)) or Location(layer.path, 1, 1),
        )
    message = message_at(parent)
    members: tuple[str, ...] = ()
    if message is not None:
        for names in message.oneofs.values():
            if path[-1] in names:
                members = names
    given = [
        m
        for m in members
        if isinstance(_get(layer.tree, parent), dict) and m in _get(layer.tree, parent)
    ]
    second = max(given, key=lambda m: layer.key_locations.get(parent + (m,), Location("")))
    return Diagnostic(
        "spec.oneof",
        format_path(parent),
        f"{' and '.join(repr(g) for g in given)} are mutually exclusive",
        hint=f"give exactly one of {', '.join(members)}",
        location=layer.key_locations.get(parent + (second,)) or layer.locate(parent),
    )


def _get(tree: Any, path: FieldPath) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _short(full: str) -> str:
    for message in _messages().values():
        for field in message.fields.values():
            if field.enum is not None and full in field.enum.short:
                return field.enum.short[full]
    return full


_TYPE_WORDS: dict[Any, str] = {
    "dict": "a mapping",
    "list": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def _type_words(expected: Any) -> str:
    if isinstance(expected, list | tuple):
        return " or ".join(_TYPE_WORDS.get(e, str(e)) for e in expected)
    return _TYPE_WORDS.get(expected, str(expected))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({text!r})"
    return type(value).__name__


def _pattern_hint(name: str, value: Any) -> str:
    """Something the message does not already say: a corrected value where one is clear."""
    if name == "sagemaker_name" and isinstance(value, str):
        fixed = re.sub(r"[^A-Za-z0-9]+", "-", value).strip("-")[:63].rstrip("-")
        if fixed and fixed != value:
            return f"e.g. {fixed!r}: other characters become hyphens"
    if name == "aws_region" and isinstance(value, str) and value.lower() != value:
        return f"region names are lower case: {value.lower()!r}"
    return ""


def _type_hint(expected: Any, value: Any) -> str:
    if expected == "dict" and isinstance(value, list):
        return "remove the leading '- ': this field is a mapping of fields, not a list"
    if expected == "list" and isinstance(value, dict):
        return "write the entries as a list ('- ' before each)"
    if expected in ("integer", "number") and isinstance(value, str):
        # only a string that reads as a number was a quoted number
        try:
            float(value)
        except ValueError:
            return "write a whole number, e.g. 2" if expected == "integer" else "write a number"
        return "write the number without quotes"
    if expected == "dict" and isinstance(value, str):
        return "this field holds nested fields; indent them under it"
    return ""


def _length_hint(path: FieldPath, word: str) -> str:
    if word != "at most":
        return "it must not be empty"
    if path[-1:] == ("name",) and path[:1] in (("training",), ("tuning",)) and len(path) <= 3:
        # The job name SageMaker gets is this plus `-<8 hex>` (compiler/lower/_job_name.py).
        return (
            "shorten it: trainspec appends `-` and 8 hex digits of the request's digest, "
            "so a rerun of the same plan finds its job, within SageMaker's limit"
        )
    return "shorten it"


def _range_hint(path: FieldPath) -> str:
    last = str(path[-1]) if path else ""
    if last.endswith("_seconds"):
        return "the value is in seconds"
    return ""
