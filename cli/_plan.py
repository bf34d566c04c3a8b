"""A Plan as the CLI prints and sends it: the SageMaker request with botocore's types.

google.protobuf.Struct stores every number as a double, so `1` comes back as `1.0`;
the plan's `sagemaker_request_json` keeps the request as botocore's service model types
it, and every printed form of a plan shows that one. Elsewhere a printed plan shows whole
numbers as integers, as people write them.
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
    from trainspec.compiler.lower._request_types import typed_request

    data = json_format.MessageToDict(plan.sagemaker_request)
    return typed_request(plan.sagemaker_operation, data) if data else data


def plan_document(plan: Any) -> dict[str, Any]:
    """The plan's proto3 JSON mapping (proto field names) with whole numbers as integers
    (`epochs: 2`, not `2.0`) and the typed request: a Struct accepts integers, so it still
    parses back to the same Plan."""
    from trainspec.compiler._tree import whole_numbers

    data = whole_numbers(json_format.MessageToDict(plan, preserving_proto_field_name=True))
    if "sagemaker_request" in data:
        data["sagemaker_request"] = request_of(plan)
    return data


PLAN_KEYS = ("sagemaker_operation", "digest")


def looks_like_plan(path: str) -> bool:
    """Whether a file is a plan `compile` or `lock` wrote (YAML, JSON or textproto),
    rather than a spec: a plan names its operation and digest at the top level."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return False  # the spec loader says why it cannot be read
    return all(key.encode() in head for key in PLAN_KEYS) and b"provenance" in head


def read_plan(path: str) -> Any:
    """Parse a plan file back into a Plan; SpecError (located at the file) when it is not
    one. YAML and JSON hold the typed request, which a Struct accepts as it is."""
    from trainspec.compiler import Diagnostic, Location, SpecError
    from trainspec.v1 import plan_pb2

    plan = plan_pb2.Plan()
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
        if path.endswith((".textproto", ".txtpb")):
            from google.protobuf import text_format

            text_format.Parse(content, plan)
        else:
            import yaml

            data = yaml.safe_load(content)
            if not isinstance(data, dict):
                raise ValueError("the file does not hold a plan (a mapping)")
            json_format.ParseDict(data, plan)
    except Exception as exc:  # OSError, yaml.YAMLError, json_format or text_format errors
        raise SpecError(
            [
                Diagnostic(
                    "diff.bad_plan",
                    "",
                    f"cannot read this plan file: {exc}",
                    hint="compile the spec again (trainspec compile or trainspec lock)",
                    location=Location(path),
                )
            ]
        ) from None
    return plan
