"""The gRPC CompilerService: a thin adapter over trainspec.compiler."""

from trainspec.server._config import ServerConfig
from trainspec.server._diff import diff_plans
from trainspec.server._logging import configure_logging
from trainspec.server._processes import WorkerError
from trainspec.server._server import RunningServer, make_server, serve, warn_if_exposed
from trainspec.server._servicer import CompilerServicer

__all__ = [
    "CompilerServicer",
    "RunningServer",
    "ServerConfig",
    "WorkerError",
    "configure_logging",
    "diff_plans",
    "make_server",
    "serve",
    "warn_if_exposed",
]
