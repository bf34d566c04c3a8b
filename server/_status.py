"""Failures as google.rpc.Status values with machine-readable details (AIP-193)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from trainspec.v1 import compiler_service_pb2

DOMAIN = "trainspec.dev"

# ErrorInfo reasons (UPPER_SNAKE_CASE, stable within DOMAIN).
REASON_INVALID_SPEC = "INVALID_SPEC"
REASON_INVALID_REQUEST = "INVALID_REQUEST"
REASON_INTERNAL = "INTERNAL"


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(code: int, message: str, details: Sequence) -> grpc.Status:
    return rpc_status.to_status(
        status_pb2.Status(code=code, message=message, details=[_pack(d) for d in details])
    )


def spec_invalid(diagnostics: Sequence, request_id: str) -> grpc.Status:
    """INVALID_ARGUMENT for a SpecError: ErrorInfo, BadRequest, DiagnosticList, RequestInfo.

    `diagnostics` are trainspec.compiler Diagnostic values (they know their proto form).
    """
    protos = [d.to_proto() for d in diagnostics]
    errors = [d for d in protos if d.severity == 1]
    first = errors[0] if errors else (protos[0] if protos else None)
    summary = f"the spec is invalid: {len(errors)} error(s)"
    if first is not None:
        where = f"{first.field_path}: " if first.field_path else ""
        summary += f"; first: {where}{first.message}"
    info = error_details_pb2.ErrorInfo(
        reason=REASON_INVALID_SPEC,
        domain=DOMAIN,
        metadata={
            "error_count": str(len(errors)),
            "first_code": first.code if first is not None else "",
            "request_id": request_id,
        },
    )
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=d.field_path, description=d.message, reason=d.code
            )
            for d in protos
        ]
    )
    return _status(
        code_pb2.INVALID_ARGUMENT,
        summary,
        [
            info,
            bad_request,
            compiler_service_pb2.DiagnosticList(diagnostics=protos),
            error_details_pb2.RequestInfo(request_id=request_id),
        ],
    )


def request_invalid(field: str, reason: str, description: str, request_id: str) -> grpc.Status:
    """INVALID_ARGUMENT for a malformed request (not a spec problem): one field violation."""
    return _status(
        code_pb2.INVALID_ARGUMENT,
        f"invalid request: {field}: {description}" if field else f"invalid request: {description}",
        [
            error_details_pb2.ErrorInfo(
                reason=REASON_INVALID_REQUEST,
                domain=DOMAIN,
                metadata={"request_id": request_id, "code": reason},
            ),
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field, description=description, reason=reason
                    )
                ]
            ),
            error_details_pb2.RequestInfo(request_id=request_id),
        ],
    )


def internal(request_id: str) -> grpc.Status:
    """INTERNAL with a generic message: the cause is logged under `request_id`, never sent."""
    return _status(
        code_pb2.INTERNAL,
        f"internal error in trainspec; quote request id {request_id} when reporting it",
        [
            error_details_pb2.ErrorInfo(
                reason=REASON_INTERNAL, domain=DOMAIN, metadata={"request_id": request_id}
            ),
            error_details_pb2.RequestInfo(request_id=request_id),
        ],
    )
