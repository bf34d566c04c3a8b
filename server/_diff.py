"""Field-by-field comparison of two plans, as PlanChange messages sorted by path."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2
from trainspec.v1 import compiler_service_pb2, plan_pb2

# The parts of a plan that say what would run. Provenance, warnings, data reports,
# versions and the digest describe how the plan was made, so two plans for the same job
# made by different compiler versions still diff as empty.
_COMPARED = (
    "job",
    "sagemaker_operation",
    "sagemaker_request",
    "model_artifact_uri",
    "batch_sizes",
    "envelope",
)

_ABSENT = object()


def _as_tree(plan: plan_pb2.Plan) -> dict[str, Any]:
    tree = json_format.MessageToDict(plan, preserving_proto_field_name=True)
    return {name: tree[name] for name in _COMPARED if name in tree}


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _walk(path: str, base: Any, head: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(base, dict) and isinstance(head, dict):
        for key in sorted(base.keys() | head.keys()):
            _walk(_join(path, key), base.get(key, _ABSENT), head.get(key, _ABSENT), out)
    elif isinstance(base, list) and isinstance(head, list):
        for index in range(max(len(base), len(head))):
            _walk(
                _join(path, index),
                base[index] if index < len(base) else _ABSENT,
                head[index] if index < len(head) else _ABSENT,
                out,
            )
    elif base != head or type(base) is not type(head):
        out.append((path, base, head))


def _value(raw: Any) -> struct_pb2.Value | None:
    if raw is _ABSENT:
        return None
    value = struct_pb2.Value()
    json_format.ParseDict(raw, value)
    return value


def diff_plans(base: plan_pb2.Plan, head: plan_pb2.Plan) -> list[compiler_service_pb2.PlanChange]:
    """Every leaf that differs between the two plans; `base`/`head` unset when absent."""
    found: list[tuple[str, Any, Any]] = []
    _walk("", _as_tree(base), _as_tree(head), found)
    changes = []
    for path, old, new in sorted(found, key=lambda change: change[0]):
        change = compiler_service_pb2.PlanChange(field_path=path)
        old_value, new_value = _value(old), _value(new)
        if old_value is not None:
            change.base.CopyFrom(old_value)
        if new_value is not None:
            change.head.CopyFrom(new_value)
        changes.append(change)
    return changes
