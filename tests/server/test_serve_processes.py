"""`trainspec serve --processes 2` as real processes: a shared port, drains, a dying worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def channels(port: int, count: int) -> list[grpc.Channel]:
    """`count` channels, each on its own connection (the kernel picks a process for each)."""
    return [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]


def events(log: list[dict], name: str) -> list[dict]:
    return [entry for entry in log if entry.get("event") == name]


def test_processes_share_the_port_and_each_serves_and_counts(serve_process, source):
    process, port, log = serve_process(
        "--processes", "2", "--drain-seconds", "0", "--metrics-port", "0"
    )
    (listening,) = events(log, "listening")
    pids = listening["pids"]
    assert listening["processes"] == 2 and len(set(pids)) == 2 and process.pid not in pids
    valid = pb.CompileRequest(source=source("valid.yaml"))
    invalid = pb.CompileRequest(source=source("invalid.yaml"))
    # 16 connections all landing on one of two processes: odds 2 in 65536.
    opened = channels(port, 16)
    try:
        for chan in opened:
            health = health_pb2_grpc.HealthStub(chan)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
            stub = pb_grpc.CompilerServiceStub(chan)
            assert stub.Compile(valid, timeout=30).plan.digest
            with pytest.raises(grpc.RpcError) as caught:
                stub.Compile(invalid, timeout=30)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        for chan in opened:
            chan.close()
    scraped = 0
    for metrics_port in listening["metrics_ports"]:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        scraped += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("grpc_server_handled_total{") and 'grpc_method="Compile"' in line
        )
    assert scraped == 32  # per-process counters that add up to every call
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    process.reader.join(10)
    compiled = [e for e in events(log, "access") if e["method"].endswith("/Compile")]
    assert len(compiled) == 32
    assert {e["pid"] for e in compiled} == set(pids), "the kernel spread no connection"
    assert sorted(e["pid"] for e in events(log, "stopped") if "worker" in e) == sorted(pids)
    assert log[-1]["event"] == "stopped" and log[-1]["pid"] == process.pid


def test_sigterm_drains_every_process_without_losing_in_flight_calls(serve_process, source):
    process, port, log = serve_process(
        "--processes", "2", "--workers", "2", "--drain-seconds", "1", "--grace-seconds", "10"
    )
    request = pb.CompileRequest(source=source("valid.yaml"))
    opened = channels(port, 16)
    try:
        stubs = [pb_grpc.CompilerServiceStub(chan) for chan in opened]
        for stub in stubs:
            stub.Compile(request, timeout=30)  # connect, and warm both processes
        calls = [stub.Compile.future(request, timeout=60) for stub in stubs for _ in range(3)]
        process.send_signal(signal.SIGTERM)
        pending_at_signal = sum(not call.done() for call in calls)
        # Every connection, whichever process holds it, reports NOT_SERVING while draining.
        for chan in opened:
            health = health_pb2_grpc.HealthStub(chan)
            for _ in range(250):
                if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == NOT_SERVING:
                    break
            else:
                pytest.fail("health never turned NOT_SERVING")
        results = [call.result() for call in calls]
        assert len(results) == 48 and all(r.plan.digest for r in results)
        assert pending_at_signal > 0, "no call was in flight when the signal came"
    finally:
        for chan in opened:
            chan.close()
    assert process.wait(30) == 0
    process.reader.join(10)
    pids = events(log, "listening")[0]["pids"]
    for pid in pids:
        mine = [e["event"] for e in log if e.get("pid") == pid]
        assert mine.index("signal") < mine.index("draining") < mine.index("stopped")
    compiled = [e for e in events(log, "access") if e["method"].endswith("/Compile")]
    assert len(compiled) == 64 and all(e["code"] == "OK" for e in compiled)
    assert log[-1]["event"] == "stopped" and log[-1]["pid"] == process.pid


def test_ctrl_c_to_the_process_group_drains_each_process_once(serve_process):
    process, _, log = serve_process(
        "--processes", "2", "--drain-seconds", "0", start_new_session=True
    )
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(30) == 0
    process.reader.join(10)
    assert len(events(log, "draining")) == 2
    assert not events(log, "stopping_now")


def test_a_worker_that_dies_stops_the_server_with_a_clear_error(serve_process):
    process, _, log = serve_process("--processes", "2", "--drain-seconds", "0")
    victim, survivor = events(log, "listening")[0]["pids"]
    os.kill(victim, signal.SIGKILL)
    assert process.wait(30) == 1
    process.reader.join(10)
    text = "".join(e["text"] for e in events(log, "text"))
    assert f"(pid {victim}) exited unexpectedly (killed by SIGKILL)" in text
    assert "Traceback" not in text
    assert any(e["event"] == "stopped" and e.get("pid") == survivor for e in log)


def test_a_port_in_use_is_a_clear_error(start_server):
    running = start_server()
    done = subprocess.run(
        [sys.executable, "-m", "trainspec", "serve", "--port", str(running.port)]
        + ["--processes", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot listen on" in done.stderr and "Traceback" not in done.stderr


def test_a_process_that_cannot_start_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        metrics_port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "trainspec", "serve", "--port", "0", "--processes", "2"]
            + ["--metrics-port", str(metrics_port), "--drain-seconds", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"Error: cannot serve metrics on 127.0.0.1:{metrics_port}" in done.stderr
    assert "Traceback" not in done.stderr
