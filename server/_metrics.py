"""Prometheus metrics of handled calls (go-grpc-prometheus names), served over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


class Metrics:
    """A private registry, so several servers in one process never share counters."""

    def __init__(self) -> None:
        # Imported here: metrics are optional and prometheus_client is only needed with them.
        import prometheus_client

        self._prometheus = prometheus_client
        self.registry = prometheus_client.CollectorRegistry()
        self._handled = prometheus_client.Counter(
            "grpc_server_handled",
            "Calls completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self._seconds = prometheus_client.Histogram(
            "grpc_server_handling_seconds",
            "Time to handle a call, in seconds.",
            ["grpc_service", "grpc_method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._http: WSGIServer | None = None
        # (method, code) -> its counter and histogram children: `labels()` looks them up
        # under a lock on every call otherwise. Methods are the registered ones only.
        self._children: dict[tuple[str, str], tuple] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        children = self._children.get((method, code))
        if children is None:
            _, service, name = method.split("/", 2) if method.count("/") == 2 else ("", "", method)
            children = (
                self._handled.labels(service, name, code),
                self._seconds.labels(service, name),
            )
            self._children[(method, code)] = children
        handled, latency = children
        handled.inc()
        latency.observe(seconds)

    def start_http(self, host: str, port: int) -> int:
        """Serve /metrics; returns the bound port (useful with port 0)."""
        server, _ = self._prometheus.start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_port

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
