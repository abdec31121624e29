"""The HTTP endpoints on a real loopback port: routes, bearer token, failing handlers."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from wirewatch.web.server import HttpServer, Response


def get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("wirewatch_test_total", "a test counter", registry=reg).inc(3)
    return reg


def test_routes_health_and_mounting_more_pages(registry: CollectorRegistry) -> None:
    state = {"healthy": True, "ready": False}
    server = HttpServer(registry, port=0, healthy=lambda: state["healthy"], ready=lambda: state["ready"])
    try:
        assert server.host == "127.0.0.1"
        status, body = get(server.url + "/metrics")
        assert status == 200 and "wirewatch_test_total 3.0" in body
        assert get(server.url + "/healthz")[0] == 200
        assert get(server.url + "/readyz")[0] == 503
        state["ready"], state["healthy"] = True, False
        assert get(server.url + "/readyz")[0] == 200 and get(server.url + "/healthz")[0] == 503
        server.add_route("/view", lambda: Response(200, b"<h1>view</h1>", "text/html"))
        assert get(server.url + "/view") == (200, "<h1>view</h1>")
        server.add_route("/boom", lambda: 1 / 0)  # type: ignore[arg-type, return-value]
        assert get(server.url + "/boom")[0] == 500
        assert get(server.url + "/metrics")[0] == 200  # still serving
        status, body = get(server.url + "/missing")
        assert status == 404 and "/metrics" in body
    finally:
        server.close()


def test_bearer_token_protects_every_route(registry: CollectorRegistry) -> None:
    server = HttpServer(registry, port=0, bearer_token="s3cret")
    try:
        assert get(server.url + "/metrics")[0] == 401
        assert get(server.url + "/healthz", token="wrong")[0] == 401
        status, body = get(server.url + "/metrics", token="s3cret")
        assert status == 200 and "wirewatch_test_total" in body
    finally:
        server.close()
