"""The lowered request typed as botocore's SageMaker service model types it, and its JSON.

A google.protobuf.Struct keeps every number as a double, and a JobSpec message's Value
fields do too, so `1` can reach the request as `1.0`; botocore's ParamValidator refuses a
float for an integer member. The service model's shapes say which members are integers,
so the types come from there rather than from a list of keys that would drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trainspec.compiler.check._botocore_check import input_shape


def typed_request(operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """`request` with every whole number in an integer or long member as an int."""
    return _typed(dict(request), input_shape(operation))


def request_json(request: Mapping[str, Any]) -> str:
    """Canonical JSON of a typed request: sorted keys, no spaces, the same bytes for the
    same request."""
    return json.dumps(
        request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _typed(value: Any, shape: Any) -> Any:
    if shape is None:  # not in the model: the check pass names it; leave it as it is
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        members = shape.members
        return {k: _typed(v, members.get(k)) for k, v in value.items()}
    if kind == "list" and isinstance(value, list | tuple):
        return [_typed(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _typed(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


__all__ = ["request_json", "typed_request"]
