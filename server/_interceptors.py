"""Server interceptors: request ids, access logs and metrics, and the bearer-token check."""

from __future__ import annotations

import contextvars
import functools
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable

import grpc

ACCESS_LOGGER = logging.getLogger("trainspec.server.access")
REQUEST_ID_HEADER = "x-request-id"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

# Health checks and reflection stay open without a token: load balancers and grpcurl
# must reach them.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)

# (method, code name, seconds) for each finished call.
Observer = Callable[[str, str, float], None]


def current_request_id() -> str:
    """The id of the call this thread is serving ("" outside a call)."""
    return _request_id.get()


def _wrap(handler: grpc.RpcMethodHandler, wrap_unary, wrap_stream) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped; unary or streaming responses."""
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, wrap_unary),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, wrap_stream),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, wrap_unary),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, wrap_stream),
    )
    for attribute, factory, wrapper in kinds:
        behaviour = getattr(handler, attribute)
        if behaviour is not None:
            return factory(
                wrapper(behaviour),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _outcome(context: grpc.ServicerContext, raised: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if not context.is_active():
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    return "UNKNOWN" if raised else "OK"


class ObservingInterceptor(grpc.ServerInterceptor):
    """Gives each call a request id and reports its method, code and latency.

    The request id is the client's `x-request-id` when it sent a sane one, else a new one;
    it is echoed in the initial metadata and logged with every access line.
    """

    def __init__(self, observers: Iterable[Observer] = ()):
        self._observers = tuple(observers)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        client_id = dict(handler_call_details.invocation_metadata or ()).get(REQUEST_ID_HEADER)

        def begin(context: grpc.ServicerContext) -> tuple[contextvars.Token, str, float]:
            request_id = (
                client_id
                if isinstance(client_id, str) and _CLIENT_REQUEST_ID.fullmatch(client_id)
                else uuid.uuid4().hex
            )
            context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
            return _request_id.set(request_id), request_id, time.perf_counter()

        def finish(context, started: tuple, raised: bool) -> None:
            token, request_id, start = started
            seconds = time.perf_counter() - start
            code = _outcome(context, raised)
            ACCESS_LOGGER.info(
                "access",
                extra={
                    "fields": {
                        "event": "access",
                        "method": method,
                        "code": code,
                        "latency_ms": round(seconds * 1000, 3),
                        "request_id": request_id,
                        "peer": context.peer(),
                    }
                },
            )
            for observe in self._observers:
                observe(method, code, seconds)
            _request_id.reset(token)

        def wrap_unary(behaviour):
            @functools.wraps(behaviour)
            def observed(request, context):
                started = begin(context)
                raised = True
                try:
                    response = behaviour(request, context)
                    raised = False
                    return response
                finally:
                    finish(context, started, raised)

            return observed

        def wrap_stream(behaviour):
            @functools.wraps(behaviour)
            def observed(request, context):
                started = begin(context)
                raised = True
                try:
                    yield from behaviour(request, context)
                    raised = False
                finally:
                    finish(context, started, raised)

            return observed

        return _wrap(handler, wrap_unary, wrap_stream)


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>` (UNAUTHENTICATED).

    The request body is never decoded for a refused call.
    """

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def _allowed(self, handler_call_details) -> bool:
        if handler_call_details.method.startswith(OPEN_SERVICES):
            return True
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details):
            return handler

        def refuse(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")

        def refuse_stream(request, context):
            refuse(request, context)
            yield  # pragma: no cover - abort raises

        unary = functools.partial(_refusing, refuse)
        stream = functools.partial(_refusing, refuse_stream)
        refused = _wrap(handler, unary, stream)
        # Leave the body undecoded: a refused caller gets no parser time.
        return refused._replace(request_deserializer=None)


def _refusing(refuse, _behaviour):
    return refuse
