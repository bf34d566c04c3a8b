"""Plain trees (dicts, lists, scalars) as the passes pass them along."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from trainspec.compiler._diagnostics import FieldPath


def copy_tree(value: Any, *, drop_nulls: bool = False) -> Any:
    """A copy whose dicts and lists the caller may change; scalars are shared (immutable).

    copy.deepcopy does the same for these trees at several times the cost (memo, dispatch),
    and copies happen on every compile; leaves are tested inline, not in a call each.
    """
    if isinstance(value, dict):
        if drop_nulls:
            return {
                k: copy_tree(v, drop_nulls=True) if isinstance(v, dict | list) else v
                for k, v in value.items()
                if v is not None
            }
        return {k: copy_tree(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [
            copy_tree(item, drop_nulls=drop_nulls) if isinstance(item, dict | list) else item
            for item in value
        ]
    return value


def tree_paths(value: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """The path of every node of `value`, itself first, in document order."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from tree_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from tree_paths(child, (*path, index))


def whole_numbers(value: Any) -> Any:
    """The tree with whole floats as ints: google.protobuf.Value holds every number as a
    double, and a person reads 64, not 64.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    return value
