"""Builds the gRPC server (`make_server`) and runs it until a signal drains it (`serve`)."""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from trainspec.server._config import ServerConfig, is_loopback
from trainspec.server._handlers import SERVICE, compiler_service_handler
from trainspec.server._interceptors import Observer, ObservingInterceptor, TokenInterceptor
from trainspec.server._job_policy import JobPolicy
from trainspec.server._job_service import JOB_SERVICE, JobServicer, add_job_service
from trainspec.server._servicer import CompilerServicer

if TYPE_CHECKING:
    from trainspec.server._metrics import Metrics

LOGGER = logging.getLogger("trainspec.server")
# How long a signal caught by a thread other than the main one can wait to be handled.
_SIGNAL_POLL_SECONDS = 0.2
# At least this long for local jobs to record Stopped after their processes are signalled.
_JOB_STOP_SECONDS = 15.0


def _log(event: str, **fields: object) -> None:
    LOGGER.info(event, extra={"fields": {"event": event, **fields}})


@dataclass
class RunningServer:
    """A built server: the grpc.Server, its bound port and its health servicer."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    config: ServerConfig
    metrics: Metrics | None = None
    metrics_port: int | None = None
    jobs: JobServicer | None = None

    def start(self) -> RunningServer:
        self.server.start()
        host, port = self.config.host, self.config.metrics_port
        if self.metrics is not None and port is not None:  # make_server pairs them
            try:
                self.metrics_port = self.metrics.start_http(host, port)
            except OSError as exc:
                self.server.stop(0)
                raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
        for service in _served(self.config):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self

    def drain(self, drain_seconds: float | None = None, grace_seconds: float | None = None) -> None:
        """Health NOT_SERVING, keep answering `drain_seconds`, then stop with grace.

        Calls that arrive during the drain period are served; when it ends the server
        refuses new calls and waits up to `grace_seconds` for the ones in flight.
        """
        drain = self.config.drain_seconds if drain_seconds is None else drain_seconds
        grace = self.config.grace_seconds if grace_seconds is None else grace_seconds
        self.health.enter_graceful_shutdown()
        _log("draining", drain_seconds=drain, grace_seconds=grace)
        time.sleep(drain)
        self.stop(grace)

    def stop(self, grace: float | None = 0) -> None:
        self.server.stop(grace).wait()
        if self.jobs is not None:
            # No training process may outlive the server unrecorded: stop them all and
            # wait for their runners to record Stopped.
            left = self.jobs.close(timeout=max(grace or 0, _JOB_STOP_SECONDS))
            if left:
                _log("jobs_still_running", jobs=left)
        if self.metrics is not None:
            self.metrics.stop_http()


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert is None or config.tls_key is None:  # given together (ServerConfig)
        return None
    return grpc.ssl_server_credentials(
        [(config.tls_key, config.tls_cert)],
        root_certificates=config.tls_client_ca,
        require_client_auth=config.tls_client_ca is not None,
    )


def _default_servicer(config: ServerConfig) -> CompilerServicer:
    from trainspec.compiler import compile_request, load_catalog

    files = JobPolicy.of(config).files  # what Compile may check for a caller
    compile_files = functools.partial(compile_request, local_files=files)
    servicer = CompilerServicer(compile_files, load_catalog())
    servicer.warm_up()
    return servicer


def _served(config: ServerConfig) -> tuple[str, ...]:
    """The services health reports: JobService only where it is switched on."""
    return ("", SERVICE.full_name) + ((JOB_SERVICE.full_name,) if config.jobs else ())


def make_server(
    config: ServerConfig | None = None, *, servicer: CompilerServicer | None = None
) -> RunningServer:
    """A bound, not yet started server for `config` (port 0 binds a free port).

    Raises OSError when the address cannot be bound.
    """
    config = config if config is not None else ServerConfig()
    policy = JobPolicy.of(config)
    servicer = servicer if servicer is not None else _default_servicer(config)
    observers: list[Observer] = []
    metrics = None
    if config.metrics_port is not None:
        from trainspec.server._metrics import Metrics

        metrics = Metrics()
        observers.append(metrics.observe)
    interceptors: list[grpc.ServerInterceptor] = [ObservingInterceptor(observers)]
    if config.token is not None:
        interceptors.append(TokenInterceptor(config.token))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="trainspec-rpc"),
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", config.max_receive_message_bytes),
            ("grpc.max_send_message_length", config.max_send_message_bytes),
            ("grpc.max_concurrent_streams", config.max_concurrent_streams),
            # Two servers on one port would split traffic silently; fail to bind instead.
            # The processes of one `serve --processes N` share it on purpose (see
            # _processes.py, which checks that no other server holds the port).
            ("grpc.so_reuseport", int(config.processes > 1)),
        ],
    )
    server.add_generic_rpc_handlers((compiler_service_handler(servicer),))
    jobs = None
    if config.jobs:  # opt-in: a caller of JobService runs code or spends money
        jobs = JobServicer(Path(config.jobs_root), policy=policy)
        add_job_service(server, jobs)
    health_servicer = health.HealthServicer()
    for service in _served(config):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*_served(config)[1:], health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    credentials = _credentials(config)
    try:
        if credentials is None:
            port = server.add_insecure_port(config.address)
        else:
            port = server.add_secure_port(config.address, credentials)
    except RuntimeError as exc:  # grpcio reports a failed bind as RuntimeError
        raise OSError(f"cannot listen on {config.address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {config.address}")
    return RunningServer(server, port, health_servicer, config, metrics, jobs=jobs)


class Shutdown:
    """Stop requests for a started server: the first drains it, a later one stops it now."""

    def __init__(self, running: RunningServer):
        self._running = running
        self._requested = threading.Event()

    def request(self, reason: str, *, escalate: bool = True) -> None:
        """Ask for the drain; when one was asked for already, `escalate` stops at once."""
        if self._requested.is_set():
            if escalate:
                _log("stopping_now", signal=reason)
                threading.Thread(target=self._running.server.stop, args=(0,), daemon=True).start()
            return
        _log("signal", signal=reason)
        self._requested.set()

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)

    def wait_then_drain(self) -> None:
        """Block until the first request, then drain the server."""
        # NOTE [signal on another thread]: the kernel may hand SIGTERM to any thread (a
        # gRPC one); Python then runs the handler only when the main thread next executes
        # bytecode, and a main thread blocked in a lock wait never does. Short waits bound
        # that delay; one long wait lost a signal for the whole hour.
        while not self._requested.wait(_SIGNAL_POLL_SECONDS):
            pass
        self._running.drain()


def warn_if_exposed(config: ServerConfig) -> None:
    """Log a warning when anyone who can reach the port may call without credentials."""
    if is_loopback(config.host) or config.authenticated:
        return
    LOGGER.warning(
        "exposed",
        extra={
            "fields": {
                "event": "exposed",
                "host": config.host,
                "message": f"listening on {config.host} with no token and no mutual TLS: "
                "anyone who reaches the port can call; give --token-file or --tls-client-ca, "
                "or put an authenticating proxy in front"
                + ("" if config.tls_cert else ", and traffic is not encrypted (--tls-cert)"),
            }
        },
    )


def listening_fields(config: ServerConfig, port: int) -> dict[str, object]:
    """What the `listening` log line reports: the address and the main settings."""
    return {
        "host": config.host,
        "port": port,
        "tls": config.tls_cert is not None,
        "mtls": config.tls_client_ca is not None,
        "token": config.token is not None,
        "workers": config.workers,
        "jobs": list(config.jobs),
        "files_root": config.files_root,
    }


def serve(config: ServerConfig | None = None, *, servicer: CompilerServicer | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain; a second signal stops at once.

    With `config.processes` above 1 the calls are served by that many processes sharing
    the port, and this one supervises them (see `_processes.serve_processes`).
    """
    config = config if config is not None else ServerConfig()
    if config.processes > 1:
        from trainspec.server._processes import serve_processes

        serve_processes(config, servicer=servicer)
        return
    running = make_server(config, servicer=servicer)
    shutdown = Shutdown(running)
    previous = {
        sig: signal.signal(sig, shutdown.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        running.start()
        # Logged once the signal handlers are in place: a supervisor may signal right after.
        _log(
            "listening",
            **listening_fields(config, running.port),
            metrics_port=running.metrics_port,
        )
        shutdown.wait_then_drain()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _log("stopped")
