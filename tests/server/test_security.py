"""TLS, mutual TLS and the bearer token, with certificates made at test time."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc

LIST = pb.ListPretrainedModelsRequest()


def code_of(stub, **kwargs) -> grpc.StatusCode:
    try:
        stub.ListPretrainedModels(LIST, timeout=5, **kwargs)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def secure_stub(port: int, credentials) -> tuple[grpc.Channel, pb_grpc.CompilerServiceStub]:
    chan = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
    return chan, pb_grpc.CompilerServiceStub(chan)


def test_tls(start_server, pki):
    running = start_server(tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    chan, stub = secure_stub(running.port, grpc.ssl_channel_credentials(pki["ca"]))
    with chan:
        assert code_of(stub) is grpc.StatusCode.OK
    # a client that trusts another CA refuses the server
    chan, stub = secure_stub(running.port, grpc.ssl_channel_credentials(pki["other_ca"]))
    with chan:
        assert code_of(stub) is grpc.StatusCode.UNAVAILABLE
    # plaintext against a TLS port fails
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        assert code_of(pb_grpc.CompilerServiceStub(chan)) is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(start_server, pki):
    running = start_server(
        tls_cert=pki["server_cert"], tls_key=pki["server_key"], tls_client_ca=pki["ca"]
    )
    with_cert = grpc.ssl_channel_credentials(
        pki["ca"], private_key=pki["client_key"], certificate_chain=pki["client_cert"]
    )
    chan, stub = secure_stub(running.port, with_cert)
    with chan:
        assert code_of(stub) is grpc.StatusCode.OK
    chan, stub = secure_stub(running.port, grpc.ssl_channel_credentials(pki["ca"]))
    with chan:
        assert code_of(stub) is grpc.StatusCode.UNAVAILABLE


def test_bearer_token(start_server):
    running = start_server(token="s3cret-token")
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        stub = pb_grpc.CompilerServiceStub(chan)
        assert code_of(stub) is grpc.StatusCode.UNAUTHENTICATED
        wrong = [("authorization", "Bearer nope")]
        assert code_of(stub, metadata=wrong) is grpc.StatusCode.UNAUTHENTICATED
        right = [("authorization", "Bearer s3cret-token")]
        assert code_of(stub, metadata=right) is grpc.StatusCode.OK
        # a refused call's body is never parsed: garbage is still UNAUTHENTICATED
        raw = chan.unary_unary("/trainspec.v1.CompilerService/Compile")
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff", timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        # health stays open for load balancers
        health = health_pb2_grpc.HealthStub(chan)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_token_over_tls_with_call_credentials(start_server, pki):
    running = start_server(
        tls_cert=pki["server_cert"], tls_key=pki["server_key"], token="s3cret-token"
    )
    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(pki["ca"]),
        grpc.access_token_call_credentials("s3cret-token"),
    )
    chan, stub = secure_stub(running.port, credentials)
    with chan:
        assert code_of(stub) is grpc.StatusCode.OK
