"""Batch formats: find the batch dimension of a collated batch, then select, join and split it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

# Layout leaves. A tensor leaf is recorded as its batch dimension (an int).
_SAMPLES = "samples"  # a list/tuple holding one plain value per sample (e.g. strings)
_CONSTANT = "constant"  # a value shared by the whole batch (0-d tensor, int, None, ...)

_PLAIN = (str, bytes, int, float, bool, type(None))


class BatchFormatError(ValueError):
    """The batch's per-sample dimension cannot be told apart, or the batch changed shape."""


def _is_sample_list(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and not hasattr(value, "_fields")
        and len(value) > 0
        and all(isinstance(item, _PLAIN) for item in value)
    )


def _leaves(batch: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(batch, torch.Tensor) or _is_sample_list(batch):
        return [(path, batch)]
    if isinstance(batch, Mapping):
        out = []
        for key, value in batch.items():
            out += _leaves(value, f"{path}[{key!r}]")
        return out
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        out = []
        for i, value in enumerate(batch):
            out += _leaves(value, f"{path}[{i}]")
        return out
    return []


def _sizes(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else (len(value),)


def detect_layout(batch: Any, batch_size_hint: int | None = None) -> Any:
    """Return the batch's layout: per tensor leaf, the dimension that indexes samples.

    NOTE [batch dimension]: DataLoader's default collate stacks samples on dim 0, so when
    every per-sample leaf agrees on its first dimension that is the batch dimension. When
    they disagree (e.g. a sequence-first tensor), the DataLoader's batch size decides: a
    leaf's batch dimension is the one dimension of that size, and a leaf with none or
    several such dimensions is ambiguous and raises BatchFormatError naming the leaf.
    """
    leaves = [
        (p, v)
        for p, v in _leaves(batch, "batch")
        if not (isinstance(v, torch.Tensor) and v.dim() == 0)
    ]
    if not leaves:
        raise BatchFormatError(
            f"batch of type {type(batch).__name__} holds no tensor with a batch dimension; "
            "sifting needs a tensor, a tuple/list or a dict of tensors (or batch_transforms)"
        )
    firsts = {_sizes(v)[0] for _, v in leaves}
    if len(firsts) == 1:
        return _build(batch, lambda _path, _v: 0)
    if batch_size_hint is None:
        shapes = ", ".join(f"{p}: {_sizes(v)}" for p, v in leaves)
        raise BatchFormatError(
            f"ambiguous batch dimension: the leaves' first dimensions differ ({shapes}) and "
            "the DataLoader has no batch_size to decide by"
        )

    def dim_of(path: str, value: Any) -> int:
        sizes = _sizes(value)
        if sizes[0] == batch_size_hint:
            return 0
        dims = [d for d, s in enumerate(sizes) if s == batch_size_hint]
        if len(dims) != 1:
            what = "no" if not dims else "several"
            raise BatchFormatError(
                f"ambiguous batch dimension: {path} has shape {sizes} with {what} dimension "
                f"of the batch size {batch_size_hint}"
            )
        if not isinstance(value, torch.Tensor):
            raise BatchFormatError(f"{path} has {sizes[0]} items, not {batch_size_hint}")
        return dims[0]

    return _build(batch, dim_of)


def _build(batch: Any, dim_of: Any, path: str = "batch") -> Any:
    if isinstance(batch, torch.Tensor):
        return _CONSTANT if batch.dim() == 0 else dim_of(path, batch)
    if _is_sample_list(batch):
        dim_of(path, batch)
        return _SAMPLES
    if isinstance(batch, Mapping):
        return {k: _build(v, dim_of, f"{path}[{k!r}]") for k, v in batch.items()}
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        return [_build(v, dim_of, f"{path}[{i}]") for i, v in enumerate(batch)]
    return _CONSTANT


def _rebuild(template: Any, items: Any) -> Any:
    kind = type(template)
    if kind is list:  # default_collate's output; checked first, it is the common case
        return items if isinstance(items, list) else list(items)
    if kind is tuple:
        return tuple(items)
    if isinstance(template, Mapping):
        try:
            return kind(items)
        except TypeError:
            return dict(items)
    if hasattr(template, "_fields"):  # namedtuple
        return type(template)(*items)
    if isinstance(template, tuple):
        return tuple(items)
    return list(items)


def _mismatch(layout: Any, batch: Any) -> BatchFormatError:
    return BatchFormatError(
        f"batch structure changed between batches (layout {layout!r}, got {type(batch).__name__})"
    )


def batch_size(batch: Any, layout: Any) -> int:
    """Number of samples in `batch`."""
    if isinstance(layout, int):
        return int(batch.shape[layout])
    if layout == _SAMPLES:
        return len(batch)
    if isinstance(layout, dict):
        for key, sub in layout.items():
            n = batch_size(batch[key], sub)
            if n >= 0:
                return n
    elif isinstance(layout, list):
        for sub_layout, sub in zip(layout, batch, strict=True):
            n = batch_size(sub, sub_layout)
            if n >= 0:
                return n
    return -1


def select(batch: Any, layout: Any, index: torch.Tensor) -> Any:
    """The samples of `batch` at `index` (a 1-d int64 tensor), in the batch's own format."""
    if isinstance(layout, int):
        if index.device != batch.device:
            index = index.to(batch.device)
        return batch.index_select(layout, index)
    if layout == _SAMPLES:
        return type(batch)(batch[i] for i in index.tolist())
    if layout == _CONSTANT:
        return batch
    if isinstance(layout, dict):
        if not isinstance(batch, Mapping) or batch.keys() != layout.keys():
            raise _mismatch(layout, batch)
        return _rebuild(batch, {k: select(batch[k], layout[k], index) for k in batch})
    if type(batch) not in (list, tuple) and not isinstance(batch, Sequence):
        raise _mismatch(layout, batch)
    if len(batch) != len(layout):
        raise _mismatch(layout, batch)
    return _rebuild(batch, [select(b, sub, index) for b, sub in zip(batch, layout, strict=True)])


def concat(parts: list[Any], layout: Any) -> Any:
    """Join batches of the same layout along their batch dimension."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(layout, int):
        return torch.cat(parts, dim=layout)
    if layout == _SAMPLES:
        return type(first)(item for part in parts for item in part)
    if layout == _CONSTANT:
        return first
    if isinstance(layout, dict):
        return _rebuild(first, {k: concat([p[k] for p in parts], layout[k]) for k in first})
    return _rebuild(first, [concat([p[i] for p in parts], sub) for i, sub in enumerate(layout)])


def narrow(batch: Any, layout: Any, start: int, length: int) -> Any:
    """Samples start..start+length of `batch`."""
    if isinstance(layout, int):
        return batch.narrow(layout, start, length)
    if layout == _SAMPLES:
        return type(batch)(batch[start : start + length])
    if layout == _CONSTANT:
        return batch
    if isinstance(layout, dict):
        return _rebuild(batch, {k: narrow(batch[k], layout[k], start, length) for k in batch})
    return _rebuild(
        batch, [narrow(b, sub, start, length) for b, sub in zip(batch, layout, strict=True)]
    )


class BatchBuffer:
    """Kept samples waiting to fill a batch; parts are joined only when a batch is taken."""

    def __init__(self, layout: Any) -> None:
        self.layout = layout
        self._parts: list[Any] = []
        self.size = 0

    def add(self, part: Any, n: int) -> None:
        if n > 0:
            self._parts.append(part)
            self.size += n

    def take(self, n: int) -> Any:
        """Remove and return the first `n` samples (n <= size)."""
        joined = concat(self._parts, self.layout)
        head = narrow(joined, self.layout, 0, n)
        rest = self.size - n
        self._parts = [narrow(joined, self.layout, n, rest)] if rest else []
        self.size = rest
        return head
