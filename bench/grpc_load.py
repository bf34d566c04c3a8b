"""Closed-loop gRPC load on loopback: Compile (valid, invalid) against a no-op RPC.

The server runs as a `trainspec serve` subprocess, so client and server never share a
GIL; the client is one asyncio process (grpc.aio). Each caller sends its next request as
soon as the last one answers. The no-op is grpc.health.v1 Health/Check on the same
server: the ceiling the gRPC stack allows on this machine, so Compile QPS / no-op QPS
says how much of it the compiler leaves.

    python bench/grpc_load.py [--seconds 10] [--callers 8,64] [--rss-calls 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc

DATA = pathlib.Path(__file__).parents[1] / "tests" / "server" / "data"


def _requests() -> dict[str, tuple[str, object]]:
    def compile_of(name: str) -> pb.CompileRequest:
        return pb.CompileRequest(source=pb.SourceFile(path=name, content=(DATA / name).read_text()))

    return {
        "noop (Health/Check)": ("health", health_pb2.HealthCheckRequest()),
        "Compile valid": ("compile", compile_of("valid.yaml")),
        "Compile invalid": ("compile", compile_of("invalid.yaml")),
    }


EXPECTED = {
    "noop (Health/Check)": grpc.StatusCode.OK,
    "Compile valid": grpc.StatusCode.OK,
    "Compile invalid": grpc.StatusCode.INVALID_ARGUMENT,
}


def start_server(workers: int, log: pathlib.Path) -> tuple[subprocess.Popen, int]:
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainspec",
                "serve",
                "--port",
                "0",
                "--workers",
                str(workers),
                "--drain-seconds",
                "0",
                "--grace-seconds",
                "5",
            ],
            stderr=sink,
            stdout=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "listening":
                return process, event["port"]
        if process.poll() is not None:
            sys.exit(f"the server exited with {process.returncode}; see {log}")
        time.sleep(0.05)
    process.kill()
    sys.exit("the server did not start in 60 s")


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def closed_loop(
    call, request, callers: int, seconds: float | None, calls: int | None, expected: grpc.StatusCode
) -> dict:
    """`callers` coroutines calling back to back, for `seconds` or `calls` calls in all."""
    latencies: list[float] = []
    unexpected: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds if seconds else None
    remaining = [calls] if calls else None

    async def caller() -> None:
        while True:
            if stop_at is not None and time.perf_counter() >= stop_at:
                return
            if remaining is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                await call(request, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                code = error.code()
            latencies.append(time.perf_counter() - start)
            if code is not expected:
                unexpected[code.name] = unexpected.get(code.name, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "calls": len(latencies),
        "qps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "unexpected": unexpected,
    }


async def run(args) -> int:
    log = pathlib.Path(tempfile.mkdtemp(prefix="grpc_load_")) / "server.log"
    process, port = start_server(args.workers, log)
    failed = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            methods = {
                "health": health_pb2_grpc.HealthStub(channel).Check,
                "compile": pb_grpc.CompilerServiceStub(channel).Compile,
            }
            requests = _requests()
            # Warm up: the first compile loads botocore's service model.
            for name, (kind, request) in requests.items():
                await closed_loop(methods[kind], request, 4, None, 200, EXPECTED[name])

            print(
                f"server: trainspec serve --workers {args.workers} (subprocess, pid "
                f"{process.pid}); client: grpc.aio, one process; cpus: {os.cpu_count()}"
            )
            print(
                f"{'workload':<22}{'callers':>8}{'calls':>9}{'QPS':>10}{'p50 ms':>9}"
                f"{'p99 ms':>9}{'errors':>8}{'/ no-op':>9}"
            )
            for callers in args.callers:
                noop_qps = None
                for name, (kind, request) in requests.items():
                    result = await closed_loop(
                        methods[kind], request, callers, args.seconds, None, EXPECTED[name]
                    )
                    noop_qps = noop_qps or result["qps"]
                    errors = sum(result["unexpected"].values())
                    failed |= errors > 0
                    print(
                        f"{name:<22}{callers:>8}{result['calls']:>9}{result['qps']:>10.0f}"
                        f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}{errors:>8}"
                        f"{result['qps'] / noop_qps:>9.2f}"
                        + (f"  {result['unexpected']}" if errors else "")
                    )

            if args.rss_calls:
                before = rss_mib(process.pid)
                kind, request = requests["Compile valid"]
                started = time.perf_counter()
                result = await closed_loop(
                    methods[kind], request, 16, None, args.rss_calls, EXPECTED["Compile valid"]
                )
                after = rss_mib(process.pid)
                failed |= bool(result["unexpected"])
                print(
                    f"server RSS: {before:.1f} MiB before, {after:.1f} MiB after "
                    f"{result['calls']} Compile calls ({time.perf_counter() - started:.0f} s): "
                    f"growth {after - before:+.1f} MiB; unexpected errors "
                    f"{sum(result['unexpected'].values())}"
                )
    finally:
        process.terminate()
        process.wait(30)
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per workload and level")
    parser.add_argument(
        "--callers", default="8,64", help="comma-separated concurrency levels (default 8,64)"
    )
    parser.add_argument("--workers", type=int, default=8, help="server worker threads")
    parser.add_argument(
        "--rss-calls",
        type=int,
        default=100_000,
        help="Compile calls between the two RSS readings (0: skip)",
    )
    args = parser.parse_args()
    args.callers = [int(c) for c in args.callers.split(",")]
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
