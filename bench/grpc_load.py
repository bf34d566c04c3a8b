"""Closed-loop gRPC load on loopback: Compile (valid, invalid) against a no-op RPC.

The server runs as a `trainspec serve` subprocess, so client and server never share a
GIL; the client is one asyncio process (grpc.aio). Each caller sends its next request as
soon as the last one answers. The no-op is grpc.health.v1 Health/Check on the same
server: the ceiling the gRPC stack allows on this machine, so Compile QPS / no-op QPS
says how much of it the compiler leaves.

Each server configuration (`--processes`, default 1 and the number of CPUs) runs on its
own server; its no-op and Compile rows share that server and the same client. Callers
use `--connections` channels (caller i the i-th modulo), each its own TCP connection,
because a server of several processes shares one port (SO_REUSEPORT) and the kernel
spreads connections, not calls, over them; the "split" column shows how the calls fell.
The workloads of one concurrency take turns in `--rounds` slices, so that noise from
neighbours on shared cores falls on the no-op and on Compile alike.

    python bench/grpc_load.py [--seconds 10] [--rounds 5] [--callers 8,64]
        [--processes 1,2] [--connections 16] [--rss-calls 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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
# Longer than the server holds access lines back before writing them (see _logging.py).
ACCESS_LOG_DELAY = 0.25


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


def start_server(processes: int, workers: int, log: pathlib.Path) -> tuple[subprocess.Popen, dict]:
    """`trainspec serve` on a free port; returns it and its `listening` log line."""
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainspec",
                "serve",
                "--port",
                "0",
                "--processes",
                str(processes),
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
                return process, event
        if process.poll() is not None:
            sys.exit(f"the server exited with {process.returncode}; see {log}")
        time.sleep(0.05)
    process.kill()
    sys.exit("the server did not start in 60 s")


class AccessLog:
    """Reads the server's access lines as they come: which process served how many calls."""

    def __init__(self, path: pathlib.Path):
        self._path = path
        self._offset = 0

    def calls_per_pid(self) -> collections.Counter:
        with self._path.open() as handle:
            handle.seek(self._offset)
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]
        self._offset += len(complete)
        counts: collections.Counter = collections.Counter()
        for line in complete.splitlines():
            event = json.loads(line)
            if event.get("event") == "access":
                counts[event.get("pid", 0)] += 1
        return counts


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def closed_loop(
    calls_by_channel: list,
    request,
    callers: int,
    seconds: float | None,
    calls: int | None,
    expected: grpc.StatusCode,
) -> dict:
    """`callers` coroutines calling back to back, for `seconds` or `calls` calls in all.

    Caller i calls through `calls_by_channel[i % len(calls_by_channel)]`.
    """
    latencies: list[float] = []
    unexpected: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds if seconds else None
    remaining = [calls] if calls else None

    async def caller(call) -> None:
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
    await asyncio.gather(
        *(caller(calls_by_channel[i % len(calls_by_channel)]) for i in range(callers))
    )
    return {
        "latencies": latencies,
        "elapsed": time.perf_counter() - began,
        "unexpected": collections.Counter(unexpected),
    }


def summarize(slices: list[dict]) -> dict:
    """QPS, p50, p99 and unexpected codes over the slices of one workload."""
    latencies = sorted(x for piece in slices for x in piece["latencies"])

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "calls": len(latencies),
        "qps": len(latencies) / sum(piece["elapsed"] for piece in slices),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "unexpected": dict(sum((piece["unexpected"] for piece in slices), collections.Counter())),
    }


def _processes(count: int) -> str:
    return f"{count} process" + ("es" if count > 1 else "")


def _split(counts: collections.Counter, pids: list[int]) -> str:
    """Percent of the calls each server process answered, in process order."""
    total = sum(counts.values()) or 1
    return "/".join(f"{100 * counts.get(pid, 0) / total:.0f}" for pid in pids)


async def run_configuration(args, processes: int, summary: dict) -> bool:
    """Every workload at every concurrency on one server; True when a call failed."""
    log = pathlib.Path(tempfile.mkdtemp(prefix="grpc_load_")) / "server.log"
    process, listening = start_server(processes, args.workers, log)
    port = listening["port"]
    # A one-process server logs no pids: its access lines carry none either.
    pids = listening.get("pids", [0])
    server_pids = [process.pid, *listening.get("pids", [])]
    access = AccessLog(log)
    failed = False
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(args.connections)
    ]
    try:
        methods = {
            "health": [health_pb2_grpc.HealthStub(c).Check for c in channels],
            "compile": [pb_grpc.CompilerServiceStub(c).Compile for c in channels],
        }
        requests = _requests()
        # Warm up every connection: the first compile loads botocore's service model.
        for name, (kind, request) in requests.items():
            await closed_loop(methods[kind], request, args.connections, None, 400, EXPECTED[name])
        await asyncio.sleep(ACCESS_LOG_DELAY)
        access.calls_per_pid()

        print(
            f"\nserver: trainspec serve --processes {processes} --workers {args.workers} "
            f"(pids {server_pids}); client: grpc.aio, one process, {args.connections} "
            f"connections; cpus: {os.cpu_count()}"
        )
        print(
            f"{'workload':<22}{'callers':>8}{'calls':>9}{'QPS':>9}{'p50 ms':>9}"
            f"{'p99 ms':>9}{'Little ms':>10}{'errors':>7}{'/ no-op':>8}{'srv cpu':>8}"
            f"{'cli cpu':>8}{'cores':>6}  split %"
        )
        for callers in args.callers:
            # NOTE [interleaved rounds]: the workloads take turns in short slices, so a
            # neighbour's burst on these shared cores lands on all of them alike and the
            # ratio to the no-op stays fair.
            slices: dict[str, list[dict]] = {name: [] for name in requests}
            served: dict[str, collections.Counter] = {
                name: collections.Counter() for name in requests
            }
            cpu = {name: [0.0, 0.0] for name in requests}  # server, client seconds
            for _ in range(args.rounds):
                for name, (kind, request) in requests.items():
                    server_before, client_before = cpu_seconds(server_pids), time.process_time()
                    slices[name].append(
                        await closed_loop(
                            methods[kind],
                            request,
                            callers,
                            args.seconds / args.rounds,
                            None,
                            EXPECTED[name],
                        )
                    )
                    cpu[name][0] += cpu_seconds(server_pids) - server_before
                    cpu[name][1] += time.process_time() - client_before
                    # The server writes access lines in batches, up to 0.1 s late.
                    await asyncio.sleep(ACCESS_LOG_DELAY)
                    served[name] += access.calls_per_pid()
            noop_qps = None
            for name in requests:
                result = summarize(slices[name])
                noop_qps = noop_qps or result["qps"]
                errors = sum(result["unexpected"].values())
                failed |= errors > 0
                ratio = result["qps"] / noop_qps
                summary[(processes, callers, name)] = (result, ratio)
                # Little's law: with `callers` always in flight, the mean latency is
                # callers / QPS.
                little_ms = 1000 * callers / result["qps"]
                server_ms, client_ms = (1000 * t / result["calls"] for t in cpu[name])
                print(
                    f"{name:<22}{callers:>8}{result['calls']:>9}{result['qps']:>9.0f}"
                    f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}{little_ms:>10.2f}"
                    f"{errors:>7}{ratio:>8.2f}{server_ms:>8.2f}{client_ms:>8.2f}"
                    f"{result['qps'] * (server_ms + client_ms) / 1000:>6.2f}"
                    f"  {_split(served[name], pids)}"
                    + (f"  {result['unexpected']}" if errors else "")
                )

        if args.rss_calls:
            before = sum(rss_mib(pid) for pid in server_pids)
            kind, request = requests["Compile valid"]
            started = time.perf_counter()
            result = summarize(
                [
                    await closed_loop(
                        methods[kind], request, 16, None, args.rss_calls, EXPECTED["Compile valid"]
                    )
                ]
            )
            after = sum(rss_mib(pid) for pid in server_pids)
            failed |= bool(result["unexpected"])
            print(
                f"server RSS (summed over {_processes(len(server_pids))}): "
                f"{before:.1f} MiB before, "
                f"{after:.1f} MiB after {result['calls']} Compile calls "
                f"({time.perf_counter() - started:.0f} s): growth {after - before:+.1f} MiB; "
                f"unexpected errors {sum(result['unexpected'].values())}"
            )
    finally:
        for channel in channels:
            await channel.close()
        process.terminate()
        process.wait(30)
    return failed


async def run(args) -> int:
    summary: dict = {}
    failed = False
    for processes in args.processes:
        failed |= await run_configuration(args, processes, summary)
    print(
        "\nLittle ms = callers / QPS (Little's law): the mean latency the measured QPS implies "
        "with every caller always waiting; p99 sits above the mean, so p99 < 20 ms at 64 "
        "callers needs more than 64 / 0.020 s = 3200 QPS.\nsrv cpu, cli cpu = CPU ms per call "
        "in the server (all its processes) and in the client; cores = QPS x their sum, the "
        "cores the run kept busy (less than the machine's when neighbours took some). Once "
        "the cores are busy, QPS cannot pass cores / (srv cpu + cli cpu), and Compile / "
        "no-op tends to the inverse ratio of their CPU sums."
    )
    for callers in args.callers:
        cells = []
        for processes in args.processes:
            result, ratio = summary[(processes, callers, "Compile valid")]
            cells.append(f"{_processes(processes)} {result['qps']:.0f} QPS ({ratio:.2f} of no-op)")
        print(f"Compile valid at {callers} callers: " + "; ".join(cells))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per workload and level")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="slices each workload's seconds are cut into, the workloads taking turns",
    )
    parser.add_argument(
        "--callers", default="8,64", help="comma-separated concurrency levels (default 8,64)"
    )
    parser.add_argument(
        "--processes",
        default=f"1,{os.cpu_count()}" if (os.cpu_count() or 1) > 1 else "1",
        help="comma-separated server configurations: processes sharing the port "
        "(default 1 and the number of CPUs)",
    )
    parser.add_argument(
        "--workers", type=int, default=8, help="server worker threads (per process)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="client channels, one TCP connection each"
    )
    parser.add_argument(
        "--rss-calls",
        type=int,
        default=100_000,
        help="Compile calls between the two RSS readings (0: skip)",
    )
    args = parser.parse_args()
    args.callers = [int(c) for c in args.callers.split(",")]
    args.processes = list(dict.fromkeys(int(p) for p in args.processes.split(",")))
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
