"""A JobSpec message (the gRPC `spec` form) into the plain tree the passes read.

json_format.MessageToDict writes 64-bit integers as strings (proto3 JSON does, for
JavaScript's sake); a spec file writes them as numbers, and the validator wants numbers.
So the dict is walked once with the field model and those strings become ints again.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message
from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
    format_path,
)
from trainspec.compiler._fields import FieldInfo, MessageInfo, job_spec

_INT32_MAX = 2**31 - 1


def message_tree(spec: Message, name: str) -> dict[str, Any]:
    """The spec as proto3 JSON with proto field names, 64-bit integers as numbers.

    A hyperparameter Value holding NaN or an infinity has no JSON form: SpecError, with
    `name` (what the request calls the message) as the place."""
    problems = [
        Diagnostic(
            "spec.out_of_range",
            format_path(path),
            f"{number} is not a finite number",
            hint="SageMaker takes a number such as 1e30, or a string",
            location=Location(name),
        )
        for path, number in _non_finite_values(spec, ())
    ]
    if problems:
        raise SpecError(problems)
    tree = json_format.MessageToDict(spec, preserving_proto_field_name=True)
    _restore_message(tree, job_spec())
    return tree


def _non_finite_values(message: Message, path: FieldPath) -> list[tuple[FieldPath, float]]:
    if isinstance(message, struct_pb2.Value):
        number = message.number_value
        kind = message.WhichOneof("kind")
        return [(path, number)] if kind == "number_value" and not math.isfinite(number) else []
    found = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        child = (*path, field.name)
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for key, item in value.items():
                    found.extend(_non_finite_values(item, (*child, key)))
        elif field.is_repeated:
            for index, item in enumerate(value):
                found.extend(_non_finite_values(item, (*child, index)))
        else:
            found.extend(_non_finite_values(value, child))
    return found


def _restore_message(tree: dict[str, Any], info: MessageInfo) -> None:
    for name, value in tree.items():
        field = info.fields.get(name)
        if field is not None:
            tree[name] = _restore_field(value, field)


def _restore_field(value: Any, field: FieldInfo) -> Any:
    if field.kind == "map" and isinstance(value, dict):
        return {key: _restore_item(item, field) for key, item in value.items()}
    if field.kind == "list" and isinstance(value, list):
        return [_restore_item(item, field) for item in value]
    return _restore_item(value, field)


def _restore_item(value: Any, field: FieldInfo) -> Any:
    if field.message is not None and isinstance(value, dict):
        _restore_message(value, field.message)
    elif field.bounds is not None and field.bounds[1] > _INT32_MAX and isinstance(value, str):
        return int(value)
    return value
