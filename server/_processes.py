"""`serve --processes N`: N server processes share one port; this process supervises them.

A call holds its process's GIL while it compiles, so one process computes on one core at
most. gRPC Python's answer for CPU-bound servers is several processes, each with its own
grpc.server bound to the same address with SO_REUSEPORT; the kernel spreads connections
(not calls) over them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from types import FrameType

from trainspec.server._config import ServerConfig
from trainspec.server._logging import tag_process
from trainspec.server._server import (
    LOGGER,
    Shutdown,
    _default_servicer,
    _log,
    listening_fields,
    make_server,
)
from trainspec.server._servicer import CompilerServicer

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class WorkerError(RuntimeError):
    """A server process failed to start, or exited without being asked to stop."""


@dataclass
class _Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    control: Connection  # the supervisor's end: "ready"/"error" come in, "drain"/"now" go out
    ready: bool = False
    hung_up: bool = False  # its end of the pipe closed before it said "ready"
    fields: dict = field(default_factory=dict)

    def tell(self, what: str, reason: str) -> None:
        with contextlib.suppress(OSError):  # it has exited: nothing left to tell
            self.control.send((what, reason))


def _reserve(config: ServerConfig) -> tuple[int, list[socket.socket]]:
    """Holds the address (a free port for port 0) with SO_REUSEPORT, for the workers to share.

    A first bind without SO_REUSEPORT fails while another server listens there; the workers
    alone would silently split its traffic with it. The reserving sockets never listen, so
    the kernel hands them no connection.
    """
    port = config.port
    held: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(
            config.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, sockaddr in dict.fromkeys(found):
            reserved = socket.socket(family, kind, proto)
            held.append(reserved)
            with socket.socket(family, kind, proto) as probe:
                # SO_REUSEADDR as grpc sets it: connections in TIME_WAIT do not block a restart.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((sockaddr[0], port, *sockaddr[2:]))
                port = probe.getsockname()[1]
                for option in (socket.SO_REUSEADDR, socket.SO_REUSEPORT):
                    reserved.setsockopt(socket.SOL_SOCKET, option, 1)
                reserved.bind((sockaddr[0], port, *sockaddr[2:]))
    except OSError as exc:
        for sock in held:
            sock.close()
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot listen on {config.address}: {reason}") from None
    return port, held


def _worker(
    index: int,
    config: ServerConfig,
    servicer: CompilerServicer | None,
    control: Connection,
    inherited: list[socket.socket | Connection],
) -> None:
    """One server process: serve `config.address` until the supervisor or SIGTERM drains it."""
    for resource in inherited:  # the supervisor's sockets and pipe ends, copied by fork
        resource.close()
    # Ctrl-C reaches the whole process group; the supervisor alone turns it into a drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tag_process(pid=os.getpid(), worker=index)
    if config.metrics_port:
        config = replace(config, metrics_port=config.metrics_port + index)
    try:
        running = make_server(config, servicer=servicer)
        shutdown = Shutdown(running)
        signal.signal(signal.SIGTERM, shutdown.on_signal)
        running.start()
    except Exception as exc:
        if isinstance(exc, OSError):
            report = ("oserror", str(exc))
        else:
            LOGGER.exception("worker_failed", extra={"fields": {"event": "worker_failed"}})
            report = ("error", f"server process {index} failed to start: {type(exc).__name__}")
        with contextlib.suppress(OSError):  # the supervisor is gone already
            control.send(report)
        sys.exit(1)
    # Blocked by the supervisor around fork; one that came meanwhile is handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _log("worker_listening", port=running.port, metrics_port=running.metrics_port)
    with contextlib.suppress(OSError):  # the supervisor is gone: the thread below drains
        control.send(("ready", {"pid": os.getpid(), "metrics_port": running.metrics_port}))

    def follow_supervisor() -> None:
        while True:
            try:
                what, reason = control.recv()
            except (EOFError, OSError):  # the supervisor is gone: nobody else will stop us
                shutdown.request("supervisor_exited", escalate=False)
                return
            shutdown.request(reason, escalate=what == "now")

    threading.Thread(target=follow_supervisor, name="trainspec-supervisor", daemon=True).start()
    shutdown.wait_then_drain()
    _log("stopped")


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def serve_processes(config: ServerConfig, *, servicer: CompilerServicer | None = None) -> None:
    """Run `config.processes` server processes on one port until SIGTERM/SIGINT drains them.

    Each process drains as `serve` does; a second signal stops them at once. Raises OSError
    when the address cannot be bound and WorkerError when a process fails to start or
    exits without being asked to (the others are drained first).
    """
    # NOTE [fork after warm-up]: the workers are forked, not spawned, so that they share
    # the compiler this process warmed up (and a broken catalog fails here, once). gRPC
    # allows fork only before a server or channel exists, and none exists here.
    servicer = servicer if servicer is not None else _default_servicer(config)
    tag_process(pid=os.getpid())
    port, held = _reserve(config)
    config = replace(config, port=port)
    context = multiprocessing.get_context("fork")
    wake_read, wake_write = socket.socketpair()
    wake_write.setblocking(False)
    signalled: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signalled.append(signal.Signals(signum).name)
        with contextlib.suppress(OSError):  # the buffer is full: a wake-up is pending anyway
            wake_write.send(b"\0")

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    workers: list[_Worker] = []
    try:
        inherited: list[socket.socket | Connection] = [*held, wake_read, wake_write]
        for index in range(config.processes):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(index, config, servicer, theirs, [*inherited, ours]),
                name=f"trainspec-serve-{index}",
            )
            # The child must not run this process's handlers before it installs its own.
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            theirs.close()
            inherited.append(ours)
            workers.append(_Worker(index, process, ours))
        _supervise(config, workers, wake_read, signalled)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        resources: list[socket.socket | Connection] = [*held, wake_read, wake_write]
        for resource in (*resources, *(w.control for w in workers)):
            resource.close()  # a worker still running sees its pipe close and drains
        for worker in workers:
            worker.process.join(config.drain_seconds + config.grace_seconds + 5)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
    _log("stopped")


def _supervise(
    config: ServerConfig, workers: list[_Worker], wake: socket.socket, signalled: list[str]
) -> None:
    """Announce the port once every worker listens; forward signals; watch for deaths."""
    stopping = False
    failure: Exception | None = None
    live = {worker.process.sentinel: worker for worker in workers}

    def stop_all(what: str, reason: str) -> None:
        for worker in live.values():
            worker.tell(what, reason)

    while live:
        starting = {w.control: w for w in live.values() if not (w.ready or w.hung_up)}
        for ready in wait([wake, *starting, *live]):
            if ready is wake:
                wake.recv(64)
                while signalled:
                    reason = signalled.pop(0)
                    if stopping:
                        _log("stopping_now", signal=reason)
                        stop_all("now", reason)
                    else:
                        _log("signal", signal=reason)
                        stopping = True
                        stop_all("drain", reason)
            elif ready in starting:
                worker = starting[ready]
                try:
                    kind, detail = ready.recv()
                except (EOFError, OSError):  # it died: its sentinel tells how
                    worker.hung_up = True
                    continue
                if kind == "ready":
                    worker.ready, worker.fields = True, detail
                    if all(w.ready for w in workers):
                        _log(
                            "listening",
                            **listening_fields(config, config.port),
                            processes=len(workers),
                            pids=[w.fields["pid"] for w in workers],
                            metrics_ports=[w.fields["metrics_port"] for w in workers],
                        )
                    continue
                worker.hung_up = True  # it could not start, and exits
                if failure is None:  # stop the others now
                    failure = (OSError if kind == "oserror" else WorkerError)(detail)
                    stopping = True
                    stop_all("drain", "worker_failed")
                    stop_all("now", "worker_failed")
            elif isinstance(ready, int):  # a process sentinel: that worker exited
                worker = live.pop(ready)
                worker.process.join()
                exitcode = worker.process.exitcode
                if stopping and exitcode == 0:
                    continue
                reason = _exit_reason(exitcode)
                _log(
                    "worker_exited",
                    worker_index=worker.index,
                    worker_pid=worker.process.pid,
                    reason=reason,
                )
                if failure is None:
                    failure = WorkerError(
                        f"server process {worker.index} (pid {worker.process.pid}) exited "
                        f"unexpectedly ({reason}); the others were drained"
                        if not stopping
                        else f"server process {worker.index} (pid {worker.process.pid}) "
                        f"failed while stopping ({reason})"
                    )
                if not stopping:
                    stopping = True
                    stop_all("drain", "worker_exited")
    if failure is not None:
        raise failure
