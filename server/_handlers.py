"""CompilerService method handlers that decode requests themselves and never leak errors.

grpcio answers undecodable bytes with INTERNAL and an unexpected exception with UNKNOWN
(with the exception's text as the message in some versions). Here the request bytes are
parsed inside the handler, so garbage is INVALID_ARGUMENT, and any exception that is not
a deliberate abort becomes INTERNAL with a request id, its traceback logged only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor, message, message_factory
from trainspec.server import _status
from trainspec.server._interceptors import call_code, current_request_id
from trainspec.v1 import compiler_service_pb2

LOGGER = logging.getLogger("trainspec.server")

SERVICE = compiler_service_pb2.DESCRIPTOR.services_by_name["CompilerService"]


def _aborted(context: grpc.ServicerContext) -> bool:
    code = call_code(context)
    return isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK


def _guard(
    method: Callable[[Any, grpc.ServicerContext], Any],
    request_class: type[message.Message],
    name: str,
) -> Callable[[bytes, grpc.ServicerContext], Any]:
    def behaviour(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = request_class.FromString(raw)
        except (message.DecodeError, RecursionError, ValueError):
            context.abort_with_status(
                _status.request_invalid(
                    "",
                    "request.undecodable",
                    f"the request is not a valid {request_class.DESCRIPTOR.full_name}",
                    current_request_id(),
                )
            )
        try:
            return method(request, context)
        except Exception:
            if _aborted(context):  # context.abort raised on purpose
                raise
            request_id = current_request_id()
            LOGGER.exception(
                "unexpected error",
                extra={
                    "fields": {"event": "internal_error", "method": name, "request_id": request_id}
                },
            )
            context.abort_with_status(_status.internal(request_id))

    return behaviour


def compiler_service_handler(servicer: object) -> grpc.GenericRpcHandler:
    """The generic handler of trainspec.v1.CompilerService over `servicer`'s methods."""
    return guarded_handler(SERVICE, servicer)


def guarded_handler(
    service: descriptor.ServiceDescriptor, servicer: object
) -> grpc.GenericRpcHandler:
    """A generic handler of the unary `service` (a ServiceDescriptor) over `servicer`'s
    methods, each decoding its own request and turning surprises into INTERNAL."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guard(getattr(servicer, method.name), request_class, method.full_name),
            request_deserializer=None,
            response_serializer=lambda response: response.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
