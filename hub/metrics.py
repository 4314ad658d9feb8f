"""Prometheus metrics of one web process, in a registry of its own (tests start many apps)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, connections: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "herald_http_requests_total",
            "REST and health requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "herald_http_request_seconds", "REST request latency by route", ["route"], registry=self.registry
        )
        self.socket_connections = Gauge(
            "herald_socket_connections", "live Socket.IO connections on this node", registry=self.registry
        )
        self.socket_connections.set_function(lambda: float(connections()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
