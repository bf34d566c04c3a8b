"""Field-by-field comparison of two plans, as PlanChange messages sorted by path.

The comparison itself is `trainspec.compiler._plan_diff` (the CLI's `diff` reads the same
leaves); this module turns its leaves into the gRPC DiffPlans reply.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2
from trainspec.compiler._plan_diff import ABSENT, changed_leaves, proto_tree
from trainspec.v1 import compiler_service_pb2, plan_pb2


def _value(raw: Any) -> struct_pb2.Value | None:
    if raw is ABSENT:
        return None
    value = struct_pb2.Value()
    json_format.ParseDict(raw, value)
    return value


def diff_plans(base: plan_pb2.Plan, head: plan_pb2.Plan) -> list[compiler_service_pb2.PlanChange]:
    """Every leaf that differs between the two plans; `base`/`head` unset when absent."""
    changes = []
    for path, old, new in changed_leaves(proto_tree(base), proto_tree(head)):
        change = compiler_service_pb2.PlanChange(field_path=path)
        old_value, new_value = _value(old), _value(new)
        if old_value is not None:
            change.base.CopyFrom(old_value)
        if new_value is not None:
            change.head.CopyFrom(new_value)
        changes.append(change)
    return changes
