"""CPU cost of the live page: the daemon's process CPU time at a fixed frame rate with N headless
browsers watching ``/`` versus none.

The simulator runs in its own process (``wirewatch simulate``) and the browsers are Chromium processes,
so ``time.process_time()`` of this process counts exactly the daemon and its web view: pipeline
threads, the overlay pusher, the event-stream writers. Phases alternate (none, watched, none, watched,
...) so a drifting background load on a shared machine hits both alike; CPU is reported per second and
per processed frame (the latter is robust to the daemon keeping up with fewer frames when the machine
is busy).
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TARGET_EXTRA_CPU = 0.05  # the target: under 5 % more daemon CPU with the browsers watching


@dataclass(frozen=True)
class Phase:
    watchers: int
    seconds: float
    cpu_s: float
    frames: int
    overlays: int
    web_cpu_s: float = 0.0  # the web view's own threads + its listener on the publish thread

    @property
    def cpu_per_s(self) -> float:
        return self.cpu_s / self.seconds

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1e3 * self.cpu_s / max(self.frames, 1)


@dataclass
class WebBenchResult:
    rate: float
    browsers: int
    backend: str
    watcher: str = "chromium"
    phases: list[Phase] = field(default_factory=list)

    @property
    def web_share(self) -> float:
        """The web view's CPU per processed frame while watched, relative to the daemon's whole CPU per
        frame while nobody watches: the extra CPU the page costs, independent of how many frames a busy
        machine let the daemon process."""
        watched = [p for p in self.phases if p.watchers > 0]
        _, _, f1 = self._sum(True)
        c0, _, f0 = self._sum(False)
        web = sum(p.web_cpu_s for p in watched)
        return (web / max(f1, 1)) / (c0 / max(f0, 1))

    def _sum(self, watched: bool) -> tuple[float, float, int]:
        ps = [p for p in self.phases if (p.watchers > 0) == watched]
        return sum(p.cpu_s for p in ps), sum(p.seconds for p in ps), sum(p.frames for p in ps)

    @property
    def extra_cpu_per_frame(self) -> float:
        """Relative increase of daemon CPU per processed frame, watched vs not."""
        (c0, _, f0), (c1, _, f1) = self._sum(False), self._sum(True)
        return (c1 / max(f1, 1)) / (c0 / max(f0, 1)) - 1.0

    @property
    def extra_cpu_per_s(self) -> float:
        (c0, s0, _), (c1, s1, _) = self._sum(False), self._sum(True)
        return (c1 / s1) / (c0 / s0) - 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "browsers": self.browsers, "backend": self.backend, "watcher": self.watcher,
                "web_share": self.web_share, "extra_cpu_per_frame": self.extra_cpu_per_frame, "extra_cpu_per_s": self.extra_cpu_per_s,
                "target": TARGET_EXTRA_CPU,
                "phases": [{"watchers": p.watchers, "seconds": p.seconds, "cpu_s": p.cpu_s, "frames": p.frames,
                            "overlays": p.overlays, "web_cpu_s": p.web_cpu_s} for p in self.phases]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def open_browser(url: str, binary: str) -> tuple[subprocess.Popen[bytes], str]:
    """A headless Chromium showing ``url`` in its own fresh profile (no network beyond loopback)."""
    profile = tempfile.mkdtemp(prefix="wirewatch-bench-chromium-")
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={profile}",
            "--window-size=1280,860", url]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), profile


def thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux /proc; 0 when gone)."""
    import os

    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WEB_THREADS = ("wirewatch-web-push", "wirewatch-http", "AnyIO worker thread")


def web_threads_cpu_s() -> float:
    """CPU of the web view's threads now alive: the overlay pusher, the HTTP server's event loop (uvicorn:
    parsing, event streams) and Starlette's worker threads (handlers)."""
    import threading

    return sum(thread_cpu_s(t.native_id) for t in threading.enumerate()
               if t.native_id is not None and t.name.startswith(WEB_THREADS))


SSE_READER = """
import socket, sys, threading
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def read():
    s = socket.create_connection((host, port))
    s.sendall(b"GET /api/events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
    while s.recv(1 << 16):
        pass
ts = [threading.Thread(target=read, daemon=True) for _ in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
"""


def open_sse_readers(host: str, port: int, n: int) -> list[tuple[subprocess.Popen[bytes], str]]:
    """``n`` raw event-stream readers in one light subprocess (the daemon's side of n watching pages,
    without n browsers' rendering competing for the CPU)."""
    proc = subprocess.Popen([sys.executable, "-c", SSE_READER, host, str(port), str(n)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [(proc, tempfile.mkdtemp(prefix="wirewatch-bench-sse-"))]


def run_web_bench(*, rate: float = 10.0, browsers: int = 3, seconds: float = 20.0, rounds: int = 2,
                  warmup_s: float = 8.0, scenario: str = "demo", backend: str = "watershed",
                  watcher: str = "chromium",
                  progress: Callable[[str], None] = lambda s: None) -> WebBenchResult:
    from wirewatch.config.daemon import DaemonConfig
    from wirewatch.daemon.service import Daemon
    from wirewatch.errors import BackendUnavailable

    binary = chromium_binary()
    if watcher not in ("chromium", "sse"):
        raise ValueError(f"watcher must be chromium or sse, got {watcher!r}")
    if binary is None and watcher == "chromium":
        raise BackendUnavailable("the web benchmark needs Chromium (apt-get install chromium)")
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    sim = subprocess.Popen([sys.executable, "-m", "wirewatch", "simulate", "--endpoint", endpoint, "--format",
                            "array-1.0", "--rate", str(rate), "--frames", "1000000", "--scenario", scenario],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = DaemonConfig.model_validate({
        "ingest": {"endpoint": endpoint, "format": "array-1.0", "policy": "latest"},
        "segment": {"backend": backend}, "http": {"port": 0},  # the daemon's own server, web view on
        "alerts": {"sinks": []}, "publish": {"zmq": {"bind": "tcp://127.0.0.1:*"}},
    })
    daemon = Daemon(config)
    result = WebBenchResult(rate=rate, browsers=browsers, backend=daemon.built.backend, watcher=watcher)
    open_: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        daemon.start()
        server = daemon.http
        app = server.app if server is not None else None
        assert server is not None and app is not None
        deadline = time.monotonic() + 120
        while daemon.pipeline.processed < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        if daemon.pipeline.processed < 3:
            raise BackendUnavailable("the daemon processed no frames from the simulator within 120 s")
        progress(f"warm-up {warmup_s:g} s")
        time.sleep(warmup_s)
        for r in range(rounds):
            for watchers in (0, browsers):
                if watchers:
                    if watcher == "sse":
                        open_ = open_sse_readers(server.host, server.port, watchers)
                    else:
                        assert binary is not None
                        open_ = [open_browser(server.url + "/", binary) for _ in range(watchers)]
                    wait_until = time.monotonic() + 120
                    while app.hub.client_count < watchers and time.monotonic() < wait_until:
                        time.sleep(0.2)
                    if app.hub.client_count < watchers:
                        raise BackendUnavailable(f"only {app.hub.client_count} of {watchers} browsers connected")
                    time.sleep(3.0)  # page load settles
                progress(f"round {r + 1}/{rounds}: {watchers} browser(s) watching, {seconds:g} s")
                cpu0, frames0, ov0, t0 = time.process_time(), daemon.pipeline.processed, app.overlays.encoded, \
                    time.monotonic()
                web0 = web_threads_cpu_s() + app.state.observe_cpu_s
                time.sleep(seconds)
                web1 = web_threads_cpu_s() + app.state.observe_cpu_s
                phase = Phase(watchers=watchers, seconds=time.monotonic() - t0, cpu_s=time.process_time() - cpu0,
                              frames=daemon.pipeline.processed - frames0, overlays=app.overlays.encoded - ov0,
                              web_cpu_s=max(0.0, web1 - web0))
                if watchers and app.hub.client_count < watchers:
                    log.warning("a browser disconnected during the measurement")
                result.phases.append(phase)
                close_browsers(open_)
                open_ = []
                if watchers:
                    time.sleep(2.0)
    finally:
        close_browsers(open_)
        sim.terminate()
        daemon.stop()
        daemon.close()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
    return result


def close_browsers(browsers: list[tuple[subprocess.Popen[bytes], str]]) -> None:
    for proc, profile in browsers:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(Path(profile), ignore_errors=True)
