"""Plain helpers shared by the system tests (their fixtures are in ``conftest.py``): test frames, waiting,
ZeroMQ senders, daemon configs and real server binaries (Alertmanager, Prometheus) on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zmq

from tests.system.alert_receiver import free_port
from wirewatch.config.daemon import DaemonConfig

T = TypeVar("T")

ALERTMANAGER_BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PROMETHEUS_BINARY = shutil.which("prometheus")


# -- frames and waiting -----------------------------------------------------------------------------------

def rods(i: int, size: int = 96) -> np.ndarray:
    """A small uint8 frame with 2-3 bright rods that move a little from frame to frame (a third one on odd
    frames): quick for the watershed baseline."""
    img = np.zeros((size, size), np.uint8)
    img[10 + i % 5:16 + i % 5, 8:70] = 200
    img[30:90, 60 + i % 3:66 + i % 3] = 180
    if i % 2:
        img[70:76, 5:40] = 220
    return img


def wait_for(cond: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.05) -> T:
    """Poll ``cond`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# -- ZeroMQ ---------------------------------------------------------------------------------------------

def bind_push(ctx: zmq.Context, endpoint: str = "tcp://127.0.0.1:*", *, linger_ms: int = 2000) -> zmq.Socket:
    """A PUSH socket bound on ``endpoint`` (a free loopback port by default; ``last_endpoint`` says which).
    Binding a fixed endpoint again is retried briefly: a closed socket's port is released asynchronously."""
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, linger_ms)
    for _ in range(50):
        try:
            sock.bind(endpoint)
            return sock
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE:
                sock.close(0)
                raise
            time.sleep(0.1)
    sock.close(0)
    raise AssertionError(f"could not bind {endpoint} again")


def last_endpoint(sock: zmq.Socket) -> str:
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


# -- daemon config --------------------------------------------------------------------------------------

def daemon_config(endpoint: str, fmt: str | None = None, **sections: Any) -> DaemonConfig:
    """A daemon config for tests: input from ``endpoint`` (format ``fmt``), the watershed backend, HTTP on a
    free loopback port; each of ``sections`` is merged over those (one level deep: ``ingest={"policy":
    "queue"}`` keeps the endpoint, ``http={"enabled": False}`` turns HTTP off)."""
    config: dict[str, Any] = {"ingest": {"endpoint": endpoint, **({"format": fmt} if fmt else {})},
                              "segment": {"backend": "watershed"}, "http": {"port": 0}}
    for name, value in sections.items():
        config[name] = {**config.get(name, {}), **value} if isinstance(value, dict) else value
    return DaemonConfig.model_validate(config)


# -- real server binaries on loopback ----------------------------------------------------------------------

@dataclass
class Server:
    """A server binary started by a test (Prometheus, Alertmanager) and its log file."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path


class Alertmanager(Server):
    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` with label equality filters."""
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as resp:
            data: list[dict[str, Any]] = json.loads(resp.read())
            return data


def start_server(argv: list[str], url: str, ready_path: str, log: Path, *, timeout: float = 30.0,
                 kind: type[Server] = Server) -> Server:
    """Start ``argv`` (output to ``log``) and wait until ``url + ready_path`` answers 200; fails with the
    log's tail when the process exits or is not ready within ``timeout`` seconds."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + ready_path, timeout=1) as resp:
                if resp.status == 200:
                    return kind(proc, url, log)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{Path(argv[0]).name} did not become ready (exit code {proc.returncode}):\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)


def start_alertmanager(config: Path, workdir: Path) -> Alertmanager:
    """A real Alertmanager with ``config`` on a free loopback port, clustering off, state under ``workdir``."""
    assert ALERTMANAGER_BINARY is not None
    port = free_port()
    server = start_server([ALERTMANAGER_BINARY, f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
                           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                          f"http://127.0.0.1:{port}", "/-/ready", workdir / "alertmanager.log", kind=Alertmanager)
    assert isinstance(server, Alertmanager)
    return server
