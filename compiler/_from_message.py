"""A JobSpec message (the gRPC `spec` form) into the plain tree the passes read.

json_format.MessageToDict writes 64-bit integers as strings (proto3 JSON does, for
JavaScript's sake); a spec file writes them as numbers, and the validator wants numbers.
So the dict is walked once with the field model and those strings become ints again.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from trainspec.compiler._fields import FieldInfo, MessageInfo, job_spec

_INT32_MAX = 2**31 - 1


def message_tree(spec: Message) -> dict[str, Any]:
    """The spec as proto3 JSON with proto field names, 64-bit integers as numbers."""
    tree = json_format.MessageToDict(spec, preserving_proto_field_name=True)
    _restore_message(tree, job_spec())
    return tree


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
