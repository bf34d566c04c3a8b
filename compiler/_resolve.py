"""The resolve pass: merge the layers of a job into one tree, recording each value's origin.

Merge rules (STYLE.md item 6; tests/compiler/data/merge_cases.yaml): messages and maps
merge key by key; scalars and lists are replaced; a tagged union (a message whose fields
all sit in one oneof, e.g. `model` or a tuning range) is replaced whole; setting one
member of a oneof drops the others; an explicit null removes the lower layers' value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainspec.compiler._diagnostics import FieldPath
from trainspec.compiler._fields import FieldInfo, MessageInfo, job_spec
from trainspec.compiler._origin import Origin
from trainspec.compiler._tree import copy_tree
from trainspec.compiler.load._layers import Layer


@dataclass(frozen=True)
class Resolved:
    """A job's merged tree (proto field names, full enum names) and per-value origins."""

    job: str  # "training" | "tuning"
    tree: Mapping[str, Any]
    origins: Mapping[FieldPath, Origin]

    @property
    def training_path(self) -> tuple[str, ...]:
        """Where the training job sits: `training` or a tuning job's `tuning.training`."""
        return ("training",) if self.job == "training" else ("tuning", "training")

    @property
    def training(self) -> Mapping[str, Any]:
        node: Any = self.tree
        for part in self.training_path:
            node = node.get(part, {})
        return node


def resolve(layers: Sequence[Layer], job: str) -> Resolved:
    """Merge `layers` (lowest precedence first) into a Resolved job."""
    tree: dict[str, Any] = {}
    origins: dict[FieldPath, Origin] = {}
    for layer in layers:
        _merge_message(tree, layer.tree, job_spec(), (), layer, origins)
    return Resolved(job, tree, origins)


def _merge_message(
    base: dict,
    upper: Mapping[str, Any],
    info: MessageInfo,
    path: FieldPath,
    layer: Layer,
    origins: dict[FieldPath, Origin],
) -> None:
    fields = info.by_any_name
    for key, value in upper.items():
        field = fields.get(key)
        if field is None:  # validated layers hold known fields only
            continue
        child = path + (key,)
        if field.oneof:
            for sibling in info.oneofs[field.oneof]:
                if sibling != key and sibling in base:
                    del base[sibling]
                    _drop_origins(origins, path + (sibling,))
        if value is None:
            base.pop(key, None)
            _drop_origins(origins, child)
        elif field.merges_by_key and isinstance(value, dict) and isinstance(base.get(key), dict):
            if field.kind == "message":
                assert field.message is not None
                _merge_message(base[key], value, field.message, child, layer, origins)
            else:
                _merge_map(base[key], value, field, child, layer, origins)
        else:
            _replace(base, key, value, child, layer, origins)


def _merge_map(
    base: dict,
    upper: Mapping[str, Any],
    field: FieldInfo,
    path: FieldPath,
    layer: Layer,
    origins: dict[FieldPath, Origin],
) -> None:
    item = field.message
    for key, value in upper.items():
        child = path + (key,)
        if value is None:
            base.pop(key, None)
            _drop_origins(origins, child)
        elif (
            item is not None
            and not item.is_tagged_union
            and isinstance(base.get(key), dict)
            and isinstance(value, dict)
        ):
            _merge_message(base[key], value, item, child, layer, origins)
        else:
            _replace(base, key, value, child, layer, origins)


def _replace(
    base: dict, key: str, value: Any, path: FieldPath, layer: Layer, origins: dict
) -> None:
    old = base.get(key)
    if isinstance(old, dict) and old:
        _drop_origins(origins, path)
    else:  # a leaf's origin sits at its own path alone; no need to scan them all
        origins.pop(path, None)
    if isinstance(value, dict | list):
        value = copy_tree(value, drop_nulls=True)  # layers are cached and shared
    base[key] = value
    _record(value, path, layer, origins)


def _record(value: Any, path: FieldPath, layer: Layer, origins: dict) -> None:
    """Give every leaf under `path` its origin in `layer`: scalars, lists (replaced whole)
    and empty maps are leaves. Leaves are handled in the loop, not in a call each."""
    if not (isinstance(value, dict) and value):
        origins[path] = layer.origin(path)
        return
    origin = layer.origin
    for key, item in value.items():
        child = path + (key,)
        if isinstance(item, dict) and item:
            _record(item, child, layer, origins)
        else:
            origins[child] = origin(child)


def _drop_origins(origins: dict[FieldPath, Origin], path: FieldPath) -> None:
    size = len(path)
    for known in [p for p in origins if p[:size] == path]:
        del origins[known]
