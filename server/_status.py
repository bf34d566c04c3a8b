"""Failures as google.rpc.Status values with machine-readable details (AIP-193)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from trainspec.v1 import compiler_service_pb2, diagnostic_pb2

DOMAIN = "trainspec.dev"

# Status details travel in one trailer, and a client refuses trailers over its metadata
# limit, losing every detail: measured with grpcio 1.85, some calls fail from 8,000 bytes
# (the soft limit) and all from 16,000. The details stay under this, leaving room for
# the status message and the other trailers.
MAX_DETAILS_BYTES = 6 * 1024
# Any one text of a diagnostic (a message quoting a caller's 100 KB key, say).
MAX_TEXT_CHARS = 300

# ErrorInfo reasons (UPPER_SNAKE_CASE, stable within DOMAIN).
REASON_INVALID_SPEC = "INVALID_SPEC"
REASON_INVALID_REQUEST = "INVALID_REQUEST"
REASON_INTERNAL = "INTERNAL"


def _pack(message: Message) -> any_pb2.Any:
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
    protos = [_clipped(d.to_proto()) for d in diagnostics]
    errors = [d for d in protos if d.severity == 1]
    first = errors[0] if errors else (protos[0] if protos else None)
    summary = f"the spec is invalid: {len(errors)} error(s)"
    if first is not None:
        where = f"{first.field_path}: " if first.field_path else ""
        summary += f"; first: {where}{first.message}"
    # Errors first, so that what is cut to fit the trailer is warnings and later errors.
    protos.sort(key=lambda d: d.severity != 1)
    shown = len(protos)
    while True:
        status = _spec_status(summary, protos[:shown], len(protos), len(errors), first, request_id)
        size = len(status.trailing_metadata[0][1])
        if size <= MAX_DETAILS_BYTES or shown == 0:
            return status
        shown = min(shown - 1, shown * MAX_DETAILS_BYTES // size)


def _spec_status(
    summary: str,
    protos: list[diagnostic_pb2.Diagnostic],
    total: int,
    error_count: int,
    first: diagnostic_pb2.Diagnostic | None,
    request_id: str,
) -> grpc.Status:
    left_out = total - len(protos)
    if left_out:
        summary += f"; {left_out} diagnostic(s) left out of the details to fit the trailer"
    info = error_details_pb2.ErrorInfo(
        reason=REASON_INVALID_SPEC,
        domain=DOMAIN,
        metadata={
            "error_count": str(error_count),
            "first_code": first.code if first is not None else "",
            "request_id": request_id,
            "diagnostics_left_out": str(left_out),
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


def _clipped(diagnostic):
    """The diagnostic with each text at most MAX_TEXT_CHARS long."""
    for field in ("message", "hint", "field_path", "value"):
        text = getattr(diagnostic, field, None)
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            setattr(diagnostic, field, text[: MAX_TEXT_CHARS - 3] + "...")
    if diagnostic.HasField("location") and len(diagnostic.location.path) > MAX_TEXT_CHARS:
        diagnostic.location.path = diagnostic.location.path[: MAX_TEXT_CHARS - 3] + "..."
    return diagnostic


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
