"""Reading a Plan's SageMaker request back as boto3 keyword arguments.

google.protobuf.Struct stores every number as a double, so `1` comes back as `1.0`;
botocore's service model says which members are integers, and those are restored.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import json_format


@functools.cache
def _input_shape(operation: str) -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(operation).input_shape


def request_of(plan: Any) -> dict[str, Any]:
    """The plan's `sagemaker_request` with the types boto3 expects."""
    data = json_format.MessageToDict(plan.sagemaker_request)
    return _typed(data, _input_shape(plan.sagemaker_operation))


def _typed(value: Any, shape: Any) -> Any:
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _typed(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_typed(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _typed(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
