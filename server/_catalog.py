"""Catalog entries (compiler dataclasses) as trainspec.v1 messages, sorted by key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor, json_format
from google.protobuf.message import Message
from trainspec.v1 import compiler_service_pb2

_MISSING = object()


def _field_value(entry: Any, name: str) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name, _MISSING)
    return getattr(entry, name, _MISSING)


def _to_message(key_field: str, key: str, entry: Any, message_class: type[Message]) -> Any:
    """Copies the entry's attributes that share a name with a message field."""
    message = message_class()
    for field in message_class.DESCRIPTOR.fields:
        value = key if field.name == key_field else _field_value(entry, field.name)
        if value is _MISSING or value is None:
            continue
        if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            json_format.ParseDict(_plain(value), getattr(message, field.name))
        else:
            setattr(message, field.name, type(getattr(message, field.name))(value))
    return message


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def instance_types(instances: Mapping[str, Any]) -> list[compiler_service_pb2.InstanceType]:
    return [
        _to_message("name", name, instances[name], compiler_service_pb2.InstanceType)
        for name in sorted(instances)
    ]


def pretrained_models(models: Mapping[str, Any]) -> list[compiler_service_pb2.PretrainedModel]:
    return [
        _to_message("id", model_id, models[model_id], compiler_service_pb2.PretrainedModel)
        for model_id in sorted(models)
    ]
