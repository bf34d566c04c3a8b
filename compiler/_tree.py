"""Plain trees (dicts, lists, scalars) as the passes pass them along."""

from __future__ import annotations

from typing import Any


def copy_tree(value: Any, *, drop_nulls: bool = False) -> Any:
    """A copy whose dicts and lists the caller may change; scalars are shared (immutable).

    copy.deepcopy does the same for these trees at several times the cost (memo, dispatch),
    and copies happen on every compile.
    """
    if isinstance(value, dict):
        return {
            k: copy_tree(v, drop_nulls=drop_nulls)
            for k, v in value.items()
            if not (drop_nulls and v is None)
        }
    if isinstance(value, list):
        return [copy_tree(item, drop_nulls=drop_nulls) for item in value]
    return value
