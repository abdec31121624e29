"""A real daemon (watershed, ZeroMQ on loopback) fed by the simulator, with the web view on port 0.

Shared by the web API tests, the browser tests and ``wirewatch bench web``-style measurements.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import numpy as np

from tests.system import helpers
from tests.system.helpers import wait_for
from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon
from wirewatch.simulate.producer import Simulator
from wirewatch.simulate.scenario import resolve_scenario
from wirewatch.web import HttpServer, WebConfig

__all__ = ["LiveDaemon", "daemon_config", "get", "get_json", "multipart", "png_bytes", "post", "rods_image",
           "start_live", "stop_live", "wait_for"]


@dataclass
class LiveDaemon:
    daemon: Daemon
    server: HttpServer
    sim: Simulator
    record: Path
    sim_thread: threading.Thread
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def processed(self) -> int:
        return self.daemon.pipeline.processed

    def records(self) -> list[dict[str, Any]]:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        out = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):  # a line being written right now
                out.append(json.loads(line))
        return out


def daemon_config(endpoint: str, record: Path, *, http: dict[str, Any] | None = None, **alerts: Any) -> DaemonConfig:
    """The live daemon's config: latest-frame policy, change points on, no HTTP of its own unless ``http``."""
    return helpers.daemon_config(endpoint, "array-1.0", ingest={"policy": "latest"}, changepoint={"enabled": True},
                                 record={"path": str(record), "fsync": "never"}, http=http or {"enabled": False},
                                 alerts={"sinks": [], **alerts}, publish={"zmq": {"bind": "tcp://127.0.0.1:*"}},
                                 pipeline={"shutdown_timeout_s": 10})


def start_live(tmp_path: Path, *, rate: float = 10.0, frames: int = 100_000, scenario: str = "demo",
               web: WebConfig | None = None, token: str | None = None, rules: list[dict[str, Any]] | None = None,
               ) -> LiveDaemon:
    sim = Simulator(resolve_scenario(scenario), endpoint="tcp://127.0.0.1:*", format="array-1.0", rate=rate,
                    frames=frames)
    endpoint = sim.open()
    record = tmp_path / "record.jsonl"
    alerts = {"rules": rules} if rules is not None else {}
    # the daemon's own HTTP port (what ``wirewatch run`` serves), with the web view, on a free port
    http: dict[str, Any] = {"port": 0, "web": (web or WebConfig(overlay_interval_s=0.2)).model_dump()}
    if token is not None:
        token_file = tmp_path / "http-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        http["bearer_token_file"] = str(token_file)
    daemon = Daemon(daemon_config(endpoint, record, http=http, **alerts)).start()
    assert daemon.http is not None
    server = daemon.http
    thread = threading.Thread(target=sim.run, name="test-sim", daemon=True)
    thread.start()
    return LiveDaemon(daemon=daemon, server=server, sim=sim, record=record, sim_thread=thread)


def stop_live(live: LiveDaemon) -> None:
    live.sim.stop()
    live.sim_thread.join(timeout=10)
    live.daemon.stop()
    live.daemon.close()  # and its HTTP server
    live.sim.close()


def get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes, Message]:
    """Status, body and headers (case-insensitive, as HTTP header names are)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    status, body, _ = get(url, token)
    return status, json.loads(body)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def rods_image(size: int = 128) -> np.ndarray:
    """Three separated bright rods on a dark background (8-bit), easy for the watershed baseline."""
    img = np.zeros((size, size), np.uint8)
    img[20:26, 10:90] = 220   # horizontal, 80 x 6
    img[40:110, 100:106] = 200  # vertical, 70 x 6
    img[80:86, 20:60] = 240   # horizontal, 40 x 6
    return img


def multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload; fields: name -> (filename, data, type)."""
    boundary = "----wirewatchtest7d1f"
    parts = []
    for name, (filename, data, ctype) in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str, token: str | None = None,
         timeout: float = 60) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except json.JSONDecodeError:
            return err.code, raw.decode(errors="replace")
