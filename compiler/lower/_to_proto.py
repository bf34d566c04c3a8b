"""A resolved tree (proto field names, full enum names) into its proto message.

`json_format.ParseDict` does this generically and validates as it goes; the tree here is
already validated, and the emit pass runs this on every compile, so a direct walk over
the field model is worth its few lines (about 4x faster).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.message import Message
from trainspec.compiler._fields import FieldInfo, MessageInfo


def fill_message(message: Message, tree: Mapping[str, Any], info: MessageInfo) -> None:
    """Set `message`'s fields from `tree`, a validated tree of the type `info` describes."""
    for name, value in tree.items():
        field = info.fields[name]
        kind = field.kind
        if kind == "message":
            fill_message(getattr(message, name), value, field.message_info)
        elif kind == "scalar" or kind == "enum":
            setattr(message, name, value)
        elif kind == "value":
            set_value(getattr(message, name), value)
        elif kind == "map":
            _fill_map(getattr(message, name), value, field)
        elif field.item_kind == "message":
            container = getattr(message, name)
            for item in value:
                fill_message(container.add(), item, field.message_info)
        elif field.item_kind == "value":
            container = getattr(message, name)
            for item in value:
                set_value(container.add(), item)
        else:
            getattr(message, name).extend(value)


def _fill_map(container: Any, tree: Mapping[str, Any], field: FieldInfo) -> None:
    if field.item_kind == "message":
        item = field.message_info
        for key, value in tree.items():
            fill_message(container[key], value, item)
    elif field.item_kind == "value":
        for key, value in tree.items():
            set_value(container[key], value)
    else:
        container.update(tree)


# The Value field that holds each plain scalar type.
SCALAR_FIELDS = {
    str: "string_value",
    bool: "bool_value",
    int: "number_value",
    float: "number_value",
}


def set_value(message: struct_pb2.Value, value: Any) -> None:
    """`json_format.ParseDict(value, message)` for a JSON-like value.

    Struct.update's generic checks (ABC isinstance per item) cost more than the whole
    rest of emit, so nested values are written field by field here.
    """
    kind = type(value)
    scalar_field = SCALAR_FIELDS.get(kind)
    if scalar_field is not None:
        setattr(message, scalar_field, value)
    elif kind is dict:  # the exact containers first: the chain below is for subclasses
        set_struct(message.struct_value, value)
    elif kind is list:
        _set_list(message.list_value.values, value)
    elif value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int | float):
        message.number_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, dict | MappingProxyType):
        set_struct(message.struct_value, value)
    else:
        _set_list(message.list_value.values, value)


def _set_list(values: Any, items: Any) -> None:
    for item in items:
        scalar_field = SCALAR_FIELDS.get(type(item))
        if scalar_field is not None:  # inline: most items are scalars
            setattr(values.add(), scalar_field, item)
        else:
            set_value(values.add(), item)


def set_struct(message: struct_pb2.Struct, tree: Mapping[str, Any]) -> None:
    """`message.update(tree)`, through `set_value`."""
    fields = message.fields
    for key, value in tree.items():
        scalar_field = SCALAR_FIELDS.get(type(value))
        if scalar_field is not None:  # inline: most values are scalars
            setattr(fields[key], scalar_field, value)
        else:
            set_value(fields[key], value)
