"""The spec's field model, read from the trainspec.v1 descriptors: the one source of truth.

The validator's cerberus schema, the spelling normalizer and the JSON Schema are all
derived from this, so none of them can drift from the .proto files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from trainspec.v1 import job_spec_pb2, review_pb2

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "boolean",
    FieldDescriptor.TYPE_INT32: "integer",
    FieldDescriptor.TYPE_INT64: "integer",
    FieldDescriptor.TYPE_UINT32: "integer",
    FieldDescriptor.TYPE_UINT64: "integer",
    FieldDescriptor.TYPE_DOUBLE: "number",
    FieldDescriptor.TYPE_FLOAT: "number",
}

# What each integer type can hold: a larger value cannot become the proto message.
_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}

# google.protobuf.Value holds hyperparameter values: scalars only (SageMaker takes strings).
_VALUE = "google.protobuf.Value"


@dataclass(frozen=True)
class EnumInfo:
    """An enum: full proto value names and the spellings users may write for each."""

    full_name: str
    values: tuple[str, ...]  # full names, UNSPECIFIED excluded
    short: Mapping[str, str]  # full name -> short name (prefix stripped)
    lookup: Mapping[str, str]  # squashed spelling -> full name

    def canonical(self, spelling: object) -> str | None:
        """The full value name for any accepted spelling, or None."""
        if not isinstance(spelling, str):
            return None
        return self.lookup.get(_squash(spelling))


def _squash(text: str) -> str:
    return text.replace("_", "").replace("-", "").lower()


@dataclass(frozen=True)
class FieldInfo:
    """One field of a message, as the spec language sees it."""

    name: str  # proto (snake_case) name
    json_name: str  # lowerCamelCase
    kind: str  # "message" | "map" | "list" | "enum" | "scalar" | "value"
    scalar: str = ""  # cerberus type of a scalar (or of list/map items that are scalars)
    message: MessageInfo | None = None  # for messages, and list/map items that are messages
    enum: EnumInfo | None = None  # for enums, and list/map items that are enums
    item_kind: str = ""  # for list/map: the kind of one item
    oneof: str = ""  # the containing oneof (real oneofs only, not proto3 `optional`)
    has_presence: bool = False  # proto3 `optional` or message-typed
    bounds: tuple[int, int] | None = None  # integers: what the proto type can hold

    @property
    def message_info(self) -> MessageInfo:
        """`message`, for a field whose kind or item kind is "message" (which sets it)."""
        if self.message is None:
            raise TypeError(f"field {self.name} holds no messages")
        return self.message

    @functools.cached_property
    def merges_by_key(self) -> bool:
        """Whether layers merge this field key by key (maps, messages but tagged unions)."""
        if self.kind == "message":
            return self.message is not None and not self.message.is_tagged_union
        return self.kind == "map"


@dataclass(frozen=True)
class MessageInfo:
    """A message: its fields by proto name and by lowerCamelCase name, and its oneofs."""

    full_name: str
    fields: Mapping[str, FieldInfo]
    oneofs: Mapping[str, tuple[str, ...]]  # oneof name -> member field names
    # Each field by its proto name and by its json name: the lookup every pass makes.
    by_any_name: Mapping[str, FieldInfo] = dataclass_field(default_factory=dict)

    @property
    def is_tagged_union(self) -> bool:
        """All fields in one oneof (Model, ParameterRange): layers replace it whole."""
        return len(self.oneofs) == 1 and len(next(iter(self.oneofs.values()))) == len(self.fields)

    def field(self, key: str) -> FieldInfo | None:
        return self.by_any_name.get(key)


def _enum_info(descriptor: EnumDescriptor) -> EnumInfo:
    values = tuple(v.name for v in descriptor.values if v.number != 0)
    prefix = _enum_prefix(descriptor.name)
    short = {v: v[len(prefix) :] if v.startswith(prefix) else v for v in values}
    lookup = {_squash(v): v for v in values} | {_squash(s): v for v, s in short.items()}
    return EnumInfo(descriptor.full_name, values, short, lookup)


def _enum_prefix(enum_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"


class _Builder:
    def __init__(self) -> None:
        self.messages: dict[str, MessageInfo] = {}

    def message(self, descriptor: Descriptor) -> MessageInfo:
        if descriptor.full_name in self.messages:
            return self.messages[descriptor.full_name]
        fields: dict[str, FieldInfo] = {}
        info = MessageInfo(
            descriptor.full_name,
            fields,
            {
                o.name: tuple(f.name for f in o.fields)
                for o in descriptor.oneofs
                if not (len(o.fields) == 1 and o.name == "_" + o.fields[0].name)
            },
        )
        self.messages[descriptor.full_name] = info  # before fields: messages may recurse
        for field in descriptor.fields:
            fields[field.name] = self.field(field)
        by_any_name = info.by_any_name
        assert isinstance(by_any_name, dict)
        by_any_name.update({f.json_name: f for f in fields.values()})
        by_any_name.update(fields)  # a proto name wins over another field's json name
        return info

    def field(self, field: FieldDescriptor) -> FieldInfo:
        oneof = field.containing_oneof
        real_oneof = oneof is not None and oneof.name != "_" + field.name
        common: dict[str, Any] = {
            "name": field.name,
            "json_name": field.json_name,
            "oneof": oneof.name if oneof is not None and real_oneof else "",
            "has_presence": field.has_presence,
        }
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return FieldInfo(kind="map", **common, **self.item(value))
        if field.is_repeated:
            return FieldInfo(kind="list", **common, **self.item(field))
        item = self.item(field)
        return FieldInfo(kind=item.pop("item_kind"), **common, **item)

    def item(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            if field.message_type.full_name == _VALUE:
                return {"item_kind": "value"}
            return {"item_kind": "message", "message": self.message(field.message_type)}
        if field.enum_type is not None:
            return {"item_kind": "enum", "enum": _enum_info(field.enum_type)}
        item: dict[str, Any] = {"item_kind": "scalar", "scalar": _SCALARS[field.type]}
        if field.type in _INT_BOUNDS:
            item["bounds"] = _INT_BOUNDS[field.type]
        return item


@functools.cache
def job_spec() -> MessageInfo:
    """The field model of trainspec.v1.JobSpec."""
    return _Builder().message(job_spec_pb2.JobSpec.DESCRIPTOR)


@functools.cache
def review_policy() -> MessageInfo:
    """The field model of trainspec.v1.ReviewPolicy, a defaults file's `review` block."""
    return _Builder().message(review_pb2.ReviewPolicy.DESCRIPTOR)


def message_at(path: tuple[str | int, ...]) -> MessageInfo | None:
    """The message type found at a field path of a JobSpec tree, or None for leaves."""
    if not path:
        return job_spec()
    field = field_at(path)
    return field.message if field is not None and field.kind == "message" else None


def field_at(path: tuple[str | int, ...]) -> FieldInfo | None:
    """The field reached by a path (map keys and list indexes step into items)."""
    info: MessageInfo | None = job_spec()
    field: FieldInfo | None = None
    for part in path:
        if field is not None and field.kind in ("map", "list"):
            info = field.message
            field = FieldInfo(
                name=str(part),
                json_name=str(part),
                kind=field.item_kind,
                scalar=field.scalar,
                message=field.message,
                enum=field.enum,
            )
            continue
        if info is None or not isinstance(part, str):
            return None
        field = info.field(part)
        if field is None:
            return None
        info = field.message
    return field
