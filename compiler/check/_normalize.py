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
    """Rebuilds a tree with normalized spellings. Most keys are written as normalized
    already, so the location maps start as copies and only entries under a renamed key
    move: a path that needs no renaming is passed on as one tuple for `raw` and `new`."""

    def __init__(self, locations: Locations, key_locations: Locations) -> None:
        self._in_locations = locations
        self._in_keys = key_locations
        self.locations: dict[FieldPath, Location] = dict(locations)
        self.key_locations: dict[FieldPath, Location] = dict(key_locations)
        self._renamed: list[FieldPath] = []  # raw paths whose entries moved away
        self._targets: set[FieldPath] = set()

    def _move(self, raw: FieldPath, new: FieldPath) -> None:
        if raw is new:
            return
        self._copy(raw, new)
        self._renamed.append(raw)

    def _copy(self, raw: FieldPath, new: FieldPath) -> None:
        self._targets.add(new)
        if raw in self._in_locations:
            self.locations[new] = self._in_locations[raw]
        if raw in self._in_keys:
            self.key_locations[new] = self._in_keys[raw]

    def finish(self) -> None:
        """Drop the entries left at raw paths that are no longer in the tree."""
        for raw in self._renamed:
            if raw not in self._targets:
                self.locations.pop(raw, None)
                self.key_locations.pop(raw, None)

    def message(self, value: Any, info: MessageInfo, raw: FieldPath, new: FieldPath) -> Any:
        self._move(raw, new)
        if not isinstance(value, dict):
            return value
        out = {}
        by_any_name = info.by_any_name
        same = raw is new
        for key, item in value.items():
            field = by_any_name.get(key)
            name = field.name if field is not None else key
            child_raw = raw + (key,)
            if name in out:  # both `instance_type` and `instanceType`: keep the first
                self._forget(item, child_raw)
                continue
            child_new = child_raw if same and name == key else new + (name,)
            if field is None:
                self._copy_subtree(item, child_raw, child_new)
                out[key] = item
            else:
                out[name] = self.field(item, field, child_raw, child_new)
        return out

    def field(self, value: Any, field: FieldInfo, raw: FieldPath, new: FieldPath) -> Any:
        kind = field.kind
        if kind == "message":
            assert field.message is not None
            return self.message(value, field.message, raw, new)
        self._move(raw, new)
        if raw is new and field.item_kind in ("scalar", "value"):
            # Nothing below moves or is respelled: no walk per entry (1000 hyperparameters).
            if kind == "map" and isinstance(value, dict):
                return dict(value)
            if kind == "list" and isinstance(value, list):
                return list(value)
        if kind == "map" and isinstance(value, dict):
            return {
                key: self.item(item, field, *self._child(raw, new, key))
                for key, item in value.items()
            }
        if kind == "list" and isinstance(value, list):
            return [
                self.item(item, field, *self._child(raw, new, index))
                for index, item in enumerate(value)
            ]
        if kind == "enum" and field.enum is not None:
            return field.enum.canonical(value) or value
        return value

    def item(self, value: Any, field: FieldInfo, raw: FieldPath, new: FieldPath) -> Any:
        if field.item_kind == "message":
            assert field.message is not None
            if field.message.full_name == "trainspec.v1.DataChannel" and isinstance(value, str):
                self._copy(raw, new + ("uri",))  # the shorthand's location is the uri's too
                self._move(raw, new)
                return {"uri": value}
            return self.message(value, field.message, raw, new)
        self._move(raw, new)
        if field.item_kind == "enum" and field.enum is not None:
            return field.enum.canonical(value) or value
        return value

    @staticmethod
    def _child(raw: FieldPath, new: FieldPath, part: str | int) -> tuple[FieldPath, FieldPath]:
        child_raw = raw + (part,)
        return child_raw, child_raw if raw is new else new + (part,)

    def _copy_subtree(self, value: Any, raw: FieldPath, new: FieldPath) -> None:
        if raw is new:
            return  # every entry below is already where it belongs
        self._move(raw, new)
        if isinstance(value, dict):
            for key, item in value.items():
                self._copy_subtree(item, raw + (key,), new + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._copy_subtree(item, raw + (index,), new + (index,))

    def _forget(self, value: Any, raw: FieldPath) -> None:
        """A dropped duplicate: its entries leave the maps."""
        self._renamed.append(raw)
        if isinstance(value, dict):
            for key, item in value.items():
                self._forget(item, raw + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._forget(item, raw + (index,))


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
    normalizer.finish()
    return out, normalizer.locations, normalizer.key_locations
