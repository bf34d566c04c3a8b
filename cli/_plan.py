"""A Plan as the CLI prints and sends it: the SageMaker request with botocore's types.

google.protobuf.Struct stores every number as a double, so `1` comes back as `1.0`;
the plan's `sagemaker_request_json` keeps the request as botocore's service model types
it, and every printed form of a plan shows that one.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format


def request_of(plan: Any) -> dict[str, Any]:
    """The plan's request as boto3 keyword arguments (integers as integers)."""
    if plan.sagemaker_request_json:
        return json.loads(plan.sagemaker_request_json)
    # A plan made before the field existed: type it from botocore's shapes.
    from trainspec.compiler._request_types import typed_request

    data = json_format.MessageToDict(plan.sagemaker_request)
    return typed_request(plan.sagemaker_operation, data) if data else data


def plan_document(plan: Any) -> dict[str, Any]:
    """The plan's proto3 JSON mapping (proto field names) with the typed request: a Struct
    accepts integers, so it still parses back to the same Plan."""
    data = json_format.MessageToDict(plan, preserving_proto_field_name=True)
    if "sagemaker_request" in data:
        data["sagemaker_request"] = request_of(plan)
    return data
