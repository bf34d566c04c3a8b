"""Field-by-field comparison of two plans, as PlanChange messages sorted by path, and the
risks a reviewer must see, as PlanRisk messages.

The comparison itself is `trainspec.compiler._plan_diff` (the CLI's `diff` reads the same
leaves and flags the same risks); this module turns them into the gRPC DiffPlans reply.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2
from trainspec.compiler._plan_diff import (
    ABSENT,
    ReviewPolicy,
    changed_leaves,
    proto_tree,
    risk_codes,
)
from trainspec.compiler._plan_diff import diff_plans as review_diff
from trainspec.v1 import compiler_service_pb2, plan_pb2, review_pb2

# What a defaults file's `review` block may hold (compiler/catalog/fields.yaml).
_MAX_COST_INCREASE_PERCENT = 100_000


class ReviewPolicyError(ValueError):
    """A DiffPlansRequest.review the server cannot use; `field` is its path there."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


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


def review_policy(review: review_pb2.ReviewPolicy) -> ReviewPolicy:
    """The policy a request's `review` gives, checked as a defaults file's block is."""
    percent = review.cost_increase_percent if review.HasField("cost_increase_percent") else None
    if percent is not None and not 0 <= percent <= _MAX_COST_INCREASE_PERCENT:
        raise ReviewPolicyError(
            "review.cost_increase_percent",
            "request.review_out_of_range",
            f"must be between 0 and {_MAX_COST_INCREASE_PERCENT}, got {percent:g}",
        )
    amount = review.cost_increase_amount if review.HasField("cost_increase_amount") else None
    if amount is not None and not amount >= 0:
        raise ReviewPolicyError(
            "review.cost_increase_amount",
            "request.review_out_of_range",
            f"must not be negative, got {amount:g}",
        )
    known = set(risk_codes())
    for index, code in enumerate(review.ignore):
        if code not in known:
            raise ReviewPolicyError(
                f"review.ignore[{index}]",
                "request.review_unknown_risk",
                f"unknown risk {code[:64]!r}; the risks are {', '.join(sorted(known))}",
            )
    return ReviewPolicy.from_tree(
        {
            "cost_increase_percent": percent,
            "cost_increase_amount": amount,
            "ignore": list(review.ignore),
        }
    )


def plan_risks(
    base: plan_pb2.Plan, head: plan_pb2.Plan, policy: ReviewPolicy
) -> list[compiler_service_pb2.PlanRisk]:
    """The risks `trainspec diff` flags going from `base` to `head`."""
    return [
        compiler_service_pb2.PlanRisk(code=r.code, field_path=r.path, message=r.message)
        for r in review_diff(base, head, policy).risks
    ]
