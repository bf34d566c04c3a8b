"""The server's settings: one frozen value checked once, before anything binds."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MIB = 1024 * 1024
JOB_BACKENDS = ("local", "sagemaker")


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """How `make_server` builds a CompilerService server.

    TLS material is given as PEM bytes so that reading files (and their errors) stays in
    the CLI. `tls_client_ca` turns on mutual TLS: clients must present a certificate
    signed by it.
    """

    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 8
    # Processes serving the port together (SO_REUSEPORT), each with `workers` threads: a
    # call holds its process's GIL, so one process computes on one core at most.
    processes: int = 1
    # Calls beyond this many at once are refused with RESOURCE_EXHAUSTED instead of
    # queueing without bound behind the worker threads.
    max_concurrent_rpcs: int = 256
    max_receive_message_bytes: int = 4 * MIB
    max_send_message_bytes: int = 16 * MIB
    max_concurrent_streams: int = 100
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_client_ca: bytes | None = None
    token: str | None = None
    # On SIGTERM: health turns NOT_SERVING and the server keeps answering for
    # `drain_seconds` (load balancers notice), then stops accepting and gives in-flight
    # calls `grace_seconds` to finish.
    drain_seconds: float = 5.0
    grace_seconds: float = 10.0
    metrics_port: int | None = None
    # Where JobService keeps local runs (the same folder as `trainspec run --local`).
    jobs_root: str = ".trainspec/runs"
    # JobService backends a caller may use ("local", "sagemaker"); none: not served.
    jobs: tuple[str, ...] = ()
    # The folder whose files Compile may check and jobs may use; None: no local files.
    files_root: str | None = None
    # SageMaker jobs' limits: empty allows any role or instance type; None, no budget.
    allowed_roles: tuple[str, ...] = ()
    allowed_instance_types: tuple[str, ...] = ()
    max_job_cost_usd: float | None = None

    @property
    def authenticated(self) -> bool:
        """Whether callers must prove who they are (a token or a client certificate)."""
        return self.token is not None or self.tls_client_ca is not None

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0-65535, got {self.port}")
        if self.workers < 1:
            problems.append(f"workers must be at least 1, got {self.workers}")
        if self.processes < 1:
            problems.append(f"processes must be at least 1, got {self.processes}")
        if self.max_concurrent_rpcs < 1:
            problems.append(
                f"max_concurrent_rpcs must be at least 1, got {self.max_concurrent_rpcs}"
            )
        if self.max_receive_message_bytes < 1024:
            problems.append(
                f"max_receive_message_bytes must be at least 1024, got "
                f"{self.max_receive_message_bytes}"
            )
        if self.max_concurrent_streams < 1:
            problems.append(
                f"max_concurrent_streams must be at least 1, got {self.max_concurrent_streams}"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            problems.append("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.token is not None and not self.token:
            problems.append("token must not be empty")
        if self.drain_seconds < 0 or self.grace_seconds < 0:
            problems.append("drain_seconds and grace_seconds must not be negative")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            problems.append(f"metrics_port must be 0-65535, got {self.metrics_port}")
        elif self.metrics_port and self.metrics_port + self.processes - 1 > 65535:
            problems.append(
                f"metrics_port {self.metrics_port} leaves no port for each of the "
                f"{self.processes} processes (they use metrics_port, metrics_port + 1, ...)"
            )
        unknown = sorted(set(self.jobs) - set(JOB_BACKENDS))
        if unknown:
            problems.append(
                f"unknown job backend(s) {', '.join(unknown)}; choose from "
                + ", ".join(JOB_BACKENDS)
            )
        if self.jobs and not self.authenticated and not is_loopback(self.host):
            problems.append(
                "JobService runs code and spends money for its callers: serving it on "
                f"{self.host} needs a token (--token-file) or mutual TLS (--tls-client-ca)"
            )
        if "local" in self.jobs and self.files_root is None:
            problems.append(
                "local jobs run code from the server's disk: give the folder they may use "
                "(--files-root)"
            )
        if self.max_job_cost_usd is not None and self.max_job_cost_usd <= 0:
            problems.append(f"max_job_cost_usd must be positive, got {self.max_job_cost_usd}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
