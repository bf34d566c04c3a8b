"""`trainspec serve`: run the gRPC CompilerService until SIGTERM/SIGINT drains it."""

from __future__ import annotations

import click


def _read_optional(path: str | None, what: str) -> bytes | None:
    return None if path is None else _read(path, what)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise click.ClickException(f"cannot read the {what} {path!r}: {exc.strerror}") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=50051,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port; the chosen one is logged).",
)
@click.option(
    "--workers",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Threads that handle calls (in each process).",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Server processes sharing the port (SO_REUSEPORT): a compile holds its process's "
    "GIL, so more than one uses more cores. The kernel spreads connections, not calls, "
    "over them.",
)
@click.option(
    "--max-concurrent-rpcs",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Calls beyond this many (in each process) get RESOURCE_EXHAUSTED.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Server certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Server private key (PEM).")
@click.option(
    "--tls-client-ca",
    type=click.Path(dir_okay=False),
    help="CA (PEM) that client certificates must chain to: turns on mutual TLS.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding a bearer token that calls must send (health stays open).",
)
@click.option(
    "--drain-seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    help="On SIGTERM, keep serving this long with health NOT_SERVING.",
)
@click.option(
    "--grace-seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Then wait this long for calls in flight.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port (same host). Metrics are per process: "
    "with --processes N, process i serves its own on this port + i (0: each a free port, "
    "logged).",
)
@click.option(
    "--jobs",
    "jobs",
    default="",
    metavar="BACKENDS",
    help="Also serve trainspec.v1.JobService for these backends, comma-separated: `local` "
    "lets callers run training code on this machine (only specs whose source and data lie "
    "under --files-root), `sagemaker` lets them start SageMaker jobs with this server's AWS "
    "credentials. Off by default; needs --token-file or --tls-client-ca unless --host is "
    "loopback.",
)
@click.option(
    "--files-root",
    type=click.Path(file_okay=False, exists=True),
    help="The one folder whose files the server may read for a caller: Compile checks local "
    "data, source and entry points under it (and nothing outside), jobs use only files "
    "under it. Without it the server reads no file for a caller.",
)
@click.option(
    "--jobs-root",
    default=".trainspec/runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where local jobs keep their job folders and store.",
)
@click.option(
    "--allow-role",
    "allowed_roles",
    multiple=True,
    metavar="ARN",
    help="SageMaker jobs may use only these IAM roles (repeatable; default: any).",
)
@click.option(
    "--allow-instance-type",
    "allowed_instance_types",
    multiple=True,
    metavar="TYPE",
    help="SageMaker jobs may start only these instance types (repeatable; default: any).",
)
@click.option(
    "--max-job-cost",
    type=click.FloatRange(0, min_open=True),
    metavar="USD",
    help="Refuse SageMaker jobs whose worst-case cost (the plan's envelope) is above this.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    processes: int,
    max_concurrent_rpcs: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    token_file: str | None,
    drain_seconds: float,
    grace_seconds: float,
    metrics_port: int | None,
    jobs: str,
    files_root: str | None,
    jobs_root: str,
    allowed_roles: tuple[str, ...],
    allowed_instance_types: tuple[str, ...],
    max_job_cost: float | None,
) -> None:
    """Serve trainspec.v1.CompilerService over gRPC (health and reflection included).

    By default only the compiler is served, and it reads no file of this machine for a
    caller (a request's paths are labels). --jobs and --files-root widen that; the README's
    Security section says what each exposes.

    Logs are JSON lines on stderr: one access line per call (method, code, latency,
    request id); with --processes N each line also names the pid (and worker) logging it.
    Access lines are written in batches, at most 0.1 s after their call; any other line
    (listening, draining, errors) writes the waiting ones first.
    """
    # grpc is imported only when serving, never by other commands.
    from trainspec.server import ServerConfig, WorkerError, configure_logging, warn_if_exposed
    from trainspec.server import serve as run

    token = None
    if token_file is not None:
        token = _read(token_file, "token file").decode("utf-8", "replace").strip()
        if not token:
            raise click.ClickException(f"the token file {token_file!r} is empty")
    try:
        config = ServerConfig(
            host=host,
            port=port,
            workers=workers,
            processes=processes,
            max_concurrent_rpcs=max_concurrent_rpcs,
            tls_cert=_read_optional(tls_cert, "TLS certificate"),
            tls_key=_read_optional(tls_key, "TLS key"),
            tls_client_ca=_read_optional(tls_client_ca, "client CA"),
            token=token,
            drain_seconds=drain_seconds,
            grace_seconds=grace_seconds,
            metrics_port=metrics_port,
            jobs=tuple(sorted({b.strip() for b in jobs.split(",") if b.strip()})),
            files_root=files_root,
            jobs_root=jobs_root,
            allowed_roles=tuple(allowed_roles),
            allowed_instance_types=tuple(allowed_instance_types),
            max_job_cost_usd=max_job_cost,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if metrics_port is not None:
        try:
            import prometheus_client  # noqa: F401
        except ModuleNotFoundError:
            raise click.ClickException(
                "--metrics-port needs prometheus-client: pip install 'trainspec[metrics]'"
            ) from None
    import logging

    from trainspec.compiler import InternalError

    # Access and lifecycle lines are info; --log-level debug adds the rest.
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    configure_logging(logging.DEBUG if debug else logging.INFO)
    warn_if_exposed(config)
    try:
        run(config)
    except (OSError, WorkerError) as exc:
        raise click.ClickException(str(exc)) from None
    except InternalError as exc:  # a broken catalog: trainspec's fault, exit 3
        click.echo(f"internal error: {exc}", err=True)
        raise SystemExit(3) from None
