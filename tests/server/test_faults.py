"""Bad input and faults: each gets the right status code and the server keeps serving."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc

COMPILE = "/trainspec.v1.CompilerService/Compile"


def code_of(call, request, **kwargs) -> grpc.StatusCode:
    try:
        call(request, **kwargs)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture(autouse=True)
def still_serving(channel, stub, source):
    """After each fault the server answers health checks and compiles a valid spec."""
    yield
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert stub.Compile(pb.CompileRequest(source=source("valid.yaml")), timeout=30).plan.digest


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff\xff", b"\x0a\x80", b"\x12\x05abc", b"\x08" + b"\xff" * 20],
    ids=["bad-tag", "truncated-length", "short-submessage", "varint-too-long"],
)
def test_garbage_bytes_are_invalid_argument(channel, garbage):
    raw = channel.unary_unary(COMPILE)  # no serializer: bytes go out as they are
    assert code_of(raw, garbage, timeout=10) is grpc.StatusCode.INVALID_ARGUMENT


def test_deeply_nested_message_bytes_are_invalid_argument(channel):
    # JobSpec.training (field 1) nested into itself through unknown fields is legal
    # wire format, but past protobuf's recursion limit.
    body = b""
    for _ in range(200):
        body = b"\x0a" + _varint(len(body)) + body
    raw = channel.unary_unary(COMPILE)
    code = code_of(raw, b"\x0a" + _varint(len(body)) + body, timeout=10)
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_a_10_mb_request_is_resource_exhausted(stub):
    big = pb.SourceFile(path="big.yaml", content="# " + "x" * (10 * 1024 * 1024))
    assert code_of(stub.Compile, pb.CompileRequest(source=big), timeout=30) is (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )


def test_a_yaml_bomb_is_refused_quickly(stub):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        prev = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prev] * 9)}]")
    lines.append("training: {name: bomb, hyperparameters: {x: *a9}}")
    bomb = pb.SourceFile(path="bomb.yaml", content="\n".join(lines) + "\n")
    start = time.perf_counter()
    assert code_of(stub.Compile, pb.CompileRequest(source=bomb), timeout=30) is (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "name,content",
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("deep.json", '{"training": ' * 50_000 + "1" + "}" * 50_000),
        ("deep.yaml", "a: " + "[" * 50_000 + "]" * 50_000),
        ("deep.textproto", "training { " * 5_000 + "}" * 5_000),
    ],
    ids=["json-list", "json-object", "yaml-flow", "textproto"],
)
def test_deeply_nested_sources_are_invalid_argument(stub, name, content):
    request = pb.CompileRequest(source=pb.SourceFile(path=name, content=content))
    assert code_of(stub.Compile, request, timeout=30) is grpc.StatusCode.INVALID_ARGUMENT


def test_a_client_that_cancels_mid_call(stub, source):
    request = pb.CompileRequest(source=source("valid.yaml"))
    calls = [stub.Compile.future(request, timeout=30) for _ in range(20)]
    for call in calls:
        call.cancel()
    for call in calls:
        assert call.cancelled() or call.exception() is None
        if call.cancelled():
            with pytest.raises(grpc.FutureCancelledError):
                call.result()


def test_a_1_ms_deadline(stub, source):
    # A compile takes a few ms; with grpc's timer granularity a 1 ms deadline may still
    # let a fast one through, but never gives any other outcome.
    request = pb.CompileRequest(source=source("valid.yaml"))
    codes = {code_of(stub.Compile, request, timeout=0.001) for _ in range(10)}
    assert codes <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK}


def test_a_call_whose_deadline_passed_while_queued_is_not_compiled(start_server, source):
    from trainspec.compiler import compile_request, load_catalog
    from trainspec.server import CompilerServicer

    compiled = []

    def slow_compile(request):
        compiled.append(request.source.path)
        time.sleep(0.3)
        return compile_request(request)

    running = start_server(servicer=CompilerServicer(slow_compile, load_catalog()), workers=1)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        stub = pb_grpc.CompilerServiceStub(chan)
        busy = stub.Compile.future(pb.CompileRequest(source=source("valid.yaml")), timeout=10)
        time.sleep(0.05)  # the only worker is now busy
        late = pb.CompileRequest(source=source("late.yaml", source("valid.yaml").content))
        assert code_of(stub.Compile, late, timeout=0.001) is grpc.StatusCode.DEADLINE_EXCEEDED
        assert code_of(stub.Compile, late, timeout=0.05) is grpc.StatusCode.DEADLINE_EXCEEDED
        assert busy.result().plan.digest
        time.sleep(0.1)  # let the queued calls reach the worker and be dropped
    assert compiled == ["valid.yaml"]


def test_500_idle_connections(server, stub, source):
    channels = [
        # a local subchannel pool gives each channel its own TCP connection
        grpc.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(500)
    ]
    try:
        for chan in channels:
            grpc.channel_ready_future(chan).result(timeout=20)
        # all open and idle; calls on fresh and on idle connections work
        assert stub.Compile(pb.CompileRequest(source=source("valid.yaml")), timeout=30).plan
        for chan in (channels[0], channels[-1]):
            compiler = pb_grpc.CompilerServiceStub(chan)
            assert compiler.ListInstanceTypes(pb.ListInstanceTypesRequest(), timeout=10)
    finally:
        for chan in channels:
            chan.close()


def test_calls_beyond_the_concurrency_limit_are_resource_exhausted(start_server, source):
    from trainspec.compiler import compile_request, load_catalog
    from trainspec.server import CompilerServicer

    release = threading.Event()

    def slow_compile(request):
        release.wait(10)
        return compile_request(request)

    running = start_server(
        servicer=CompilerServicer(slow_compile, load_catalog()), max_concurrent_rpcs=2, workers=4
    )
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        stub = pb_grpc.CompilerServiceStub(chan)
        request = pb.CompileRequest(source=source("valid.yaml"))
        held = [stub.Compile.future(request, timeout=30) for _ in range(2)]
        time.sleep(0.3)
        assert code_of(stub.Compile, request, timeout=10) is grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert all(call.result().plan.digest for call in held)
