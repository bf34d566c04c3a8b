"""Spelling normalization: lowerCamelCase names, short enum spellings and channel shorthand.

The result uses proto field names and full enum value names, so it parses with
json_format.ParseDict; locations are re-keyed to the normalized paths. Unknown keys and
unrecognised values are kept as written for the validator to report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainspec.compiler._diagnostics import FieldPath, Location
from trainspec.compiler._fields import FieldInfo, MessageInfo

Locations = Mapping[FieldPath, Location]


class _Normalizer:
    def __init__(self, locations: Locations, key_locations: Locations) -> None:
        self._in_locations = locations
        self._in_keys = key_locations
        self.locations: dict[FieldPath, Location] = {}
        self.key_locations: dict[FieldPath, Location] = {}

    def _move(self, raw: FieldPath, new: FieldPath) -> None:
        if raw in self._in_locations:
            self.locations[new] = self._in_locations[raw]
        if raw in self._in_keys:
            self.key_locations[new] = self._in_keys[raw]

    def message(self, value: Any, info: MessageInfo, raw: FieldPath, new: FieldPath) -> Any:
        self._move(raw, new)
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            field = info.field(key)
            name = field.name if field is not None else key
            if name in out:  # both `instance_type` and `instanceType`: keep the first
                continue
            if field is None:
                self._copy_subtree(item, raw + (key,), new + (key,))
                out[key] = item
            else:
                out[name] = self.field(item, field, raw + (key,), new + (name,))
        return out

    def field(self, value: Any, field: FieldInfo, raw: FieldPath, new: FieldPath) -> Any:
        if field.kind == "message":
            assert field.message is not None
            return self.message(value, field.message, raw, new)
        if field.kind in ("map", "list"):
            self._move(raw, new)
            if field.kind == "map" and isinstance(value, dict):
                return {
                    key: self.item(item, field, raw + (key,), new + (key,))
                    for key, item in value.items()
                }
            if field.kind == "list" and isinstance(value, list):
                return [
                    self.item(item, field, raw + (index,), new + (index,))
                    for index, item in enumerate(value)
                ]
            return value
        self._move(raw, new)
        if field.kind == "enum" and field.enum is not None:
            return field.enum.canonical(value) or value
        return value

    def item(self, value: Any, field: FieldInfo, raw: FieldPath, new: FieldPath) -> Any:
        if field.item_kind == "message":
            assert field.message is not None
            if field.message.full_name == "trainspec.v1.DataChannel" and isinstance(value, str):
                self._move(raw, new + ("uri",))
                self._move(raw, new)
                return {"uri": value}
            return self.message(value, field.message, raw, new)
        self._move(raw, new)
        if field.item_kind == "enum" and field.enum is not None:
            return field.enum.canonical(value) or value
        return value

    def _copy_subtree(self, value: Any, raw: FieldPath, new: FieldPath) -> None:
        self._move(raw, new)
        if isinstance(value, dict):
            for key, item in value.items():
                self._copy_subtree(item, raw + (key,), new + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._copy_subtree(item, raw + (index,), new + (index,))


def normalize(
    tree: Any,
    info: MessageInfo,
    locations: Locations,
    key_locations: Locations,
    *,
    prefix: FieldPath = (),
) -> tuple[Any, dict[FieldPath, Location], dict[FieldPath, Location]]:
    """Normalize `tree` (a message of type `info` found at `prefix`) and re-key locations."""
    normalizer = _Normalizer(locations, key_locations)
    out = normalizer.message(tree, info, prefix, prefix)
    return out, normalizer.locations, normalizer.key_locations
