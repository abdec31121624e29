"""The shipped monitoring stack, end to end, on loopback: simulator -> daemon -> Prometheus -> Alertmanager
-> process-control receiver.

Real parts only: the simulator and daemon in this process (the same code as ``wirewatch simulate`` and
``wirewatch run``, the daemon configured from the shipped ``config/wirewatch-compose.yaml``), a real
Prometheus (Debian package ``prometheus``) loading the SHIPPED rule file unchanged and scraping the
daemon every second, a real Alertmanager loading the shipped ``alertmanager.yml`` (only the webhook
address and wait times changed for loopback), and ``deploy/process-control/receiver.py``.
Through Prometheus's HTTP API the test sees the metrics arrive and the change-point alert fire during the
demo scenario (morphology changes at frames 75, 150), then sees it reach process control (or be inhibited
there by the daemon's own change-point alert for the same statistic, which arrives instead), and
every query of the shipped Grafana dashboard evaluates on that Prometheus.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
import yaml

from tests.system.alert_receiver import free_port
from tests.system.helpers import (
    ALERTMANAGER_BINARY,
    PROMETHEUS_BINARY,
    Server,
    start_alertmanager,
    start_server,
    stop_server,
)
from tests.unit.test_deploy_metrics import DASHBOARD, DEPLOY, ROOT, RULES, dashboard_exprs

pytestmark = [
    pytest.mark.skipif(PROMETHEUS_BINARY is None,
                       reason="prometheus binary absent: apt-get install prometheus (.ci/run does)"),
    pytest.mark.skipif(ALERTMANAGER_BINARY is None,
                       reason="alertmanager binary absent: apt-get install prometheus-alertmanager (.ci/run does)"),
    pytest.mark.timeout(240),
]

T = TypeVar("T")
FRAMES = 180
RATE = 12.0  # frames/s: the change at frame 75 arrives after ~6 s


def load_receiver_module() -> ModuleType:
    path = DEPLOY / "process-control" / "receiver.py"
    spec = importlib.util.spec_from_file_location("wirewatch_process_control_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, *, logs: tuple[Path, ...] = ()) -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = exc
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})\n{tails}")


@pytest.fixture
def process_control() -> Iterator[Any]:
    module = load_receiver_module()
    receiver = module.Receiver("127.0.0.1", 0, out=io.StringIO()).start()
    yield receiver
    receiver.close()


@pytest.fixture
def alertmanager(tmp_path: Path, process_control: Any) -> Iterator[Server]:
    """Alertmanager with the shipped config (this module's own, not conftest's test-receiver one)."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    hook = next(r for r in config["receivers"] if r["name"] == "process-control")["webhook_configs"][0]
    hook["url"] = f"http://127.0.0.1:{process_control.port}/alerts"
    for route in [config["route"], *config["route"].get("routes", [])]:  # loopback: no batching delay
        route["group_wait"] = "1s"
    config["route"]["group_interval"] = "1s"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    server = start_alertmanager(path, tmp_path)
    yield server
    stop_server(server)


@dataclass
class Stack:
    daemon: Any
    simulator: Any
    sim_thread: threading.Thread
    target: str


@pytest.fixture
def stack(tmp_path: Path, alertmanager: Server) -> Iterator[Stack]:
    """Simulator (demo scenario, Stream V2 like the compose stack) and a daemon configured from the
    shipped compose config, with loopback addresses and the watershed backend (fast on 2 cores)."""
    from wirewatch.config.daemon import load_daemon_config
    from wirewatch.daemon.service import Daemon
    from wirewatch.simulate.producer import Simulator
    from wirewatch.simulate.scenario import resolve_scenario

    simulator = Simulator(resolve_scenario(ROOT / "config" / "scenarios" / "demo.yaml"), endpoint="tcp://127.0.0.1:*",
                          format="stream2", rate=RATE, frames=FRAMES)
    endpoint = simulator.open()
    shipped = yaml.safe_load((ROOT / "config" / "wirewatch-compose.yaml").read_text())
    sinks = shipped["alerts"]["sinks"]
    assert sinks[0]["type"] == "alertmanager"
    sinks[0]["url"] = alertmanager.url
    config = load_daemon_config(None, environ={}, overrides={
        **shipped,
        "ingest": {**shipped["ingest"], "endpoint": endpoint},
        "segment": {"backend": "watershed"},
        "alerts": {**shipped["alerts"], "sinks": sinks},
        "record": {**shipped["record"], "path": str(tmp_path / "record.jsonl")},
        "http": {**shipped["http"], "host": "127.0.0.1", "port": 0},
    })
    daemon = Daemon(config).start()
    assert daemon.http is not None
    thread = threading.Thread(target=simulator.run, name="test-simulator", daemon=True)
    stack = Stack(daemon, simulator, thread, f"127.0.0.1:{daemon.http.port}")
    yield stack
    simulator.stop()
    thread.join(timeout=10)
    daemon.stop()
    daemon.wait(timeout=20)
    simulator.close()


@pytest.fixture
def prometheus(tmp_path: Path, stack: Stack, alertmanager: Server) -> Iterator[Server]:
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in shipped["scrape_configs"] if j["job_name"] == "wirewatch")
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [stack.target], "labels": job["static_configs"][0].get("labels", {})}]
    config = {
        "global": {**shipped["global"], "scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],  # the shipped rule file, unchanged
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.url.split("//")[1]]}]}]},
        "scrape_configs": [job],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    assert PROMETHEUS_BINARY is not None
    server = start_server(
        [PROMETHEUS_BINARY, f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        f"http://127.0.0.1:{port}", "/-/ready", tmp_path / "prometheus.log")
    yield server
    stop_server(server)


def query(prom: Server, expr: str) -> list[dict[str, Any]]:
    doc = get_json(f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def firing(prom: Server, alertname: str) -> list[dict[str, Any]]:
    alerts = get_json(f"{prom.url}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def counted_changepoints(stack: Stack) -> set[tuple[str, str]]:
    """(statistic, detector) pairs the daemon's own registry has counted a change point for."""
    return {(s.labels["statistic"], s.labels["detector"])
            for family in stack.daemon.registry.collect() if family.name == "wirewatch_changepoints"
            for s in family.samples if s.name.endswith("_total") and s.value > 0}


def test_prometheus_scrapes_the_daemon_and_the_change_point_alert_reaches_process_control(
        stack: Stack, prometheus: Server, alertmanager: Server, process_control: Any) -> None:
    logs = (prometheus.log, alertmanager.log)
    stack.sim_thread.start()

    # the metrics arrive
    up = wait_for("the daemon scraped (up == 1)", lambda: query(prometheus, 'up{job="wirewatch"} == 1'), 30, logs=logs)
    assert up[0]["metric"]["instance"] == stack.target
    wait_for("frames processed in Prometheus",
             lambda: query(prometheus, 'wirewatch_frames_processed_total{job="wirewatch"} > 20'), 60, logs=logs)
    assert query(prometheus, 'wirewatch_particle_count{job="wirewatch"} > 0')
    # no change point counted by the daemon yet (it is in its warm-up or before frame 75): no alert
    if not counted_changepoints(stack):
        assert not firing(prometheus, "WirewatchChangePointDetected"), "alert fired before any change point"

    # the scenario changes the morphology at frames 75 and 150; the change-point detector's findings
    # (which statistic moves first depends on the detector, not on this stack) fire the shipped rule
    alerts = wait_for("WirewatchChangePointDetected firing",
                      lambda: firing(prometheus, "WirewatchChangePointDetected"), 90, logs=logs)
    counted = counted_changepoints(stack)
    statistics = {a["labels"]["statistic"] for a in alerts}
    for a in alerts:  # one alert per (statistic, detector) the daemon counted
        assert (a["labels"]["statistic"], a["labels"]["detector"]) in counted
        assert a["labels"]["statistic"] in stack.daemon.config.changepoint.stats
    alert = alerts[0]
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["job"] == "wirewatch"
    assert alert["labels"]["instance"] == stack.target
    assert alert["annotations"]["summary"] == (f"Change point in {alert['labels']['statistic']} on {stack.target} "
                                               f"({alert['labels']['detector']})")
    processed_at_alert = stack.daemon.pipeline.processed
    assert processed_at_alert < FRAMES, "the alert should fire while the run goes on, not after it"
    # frames were flowing: the no-frames alert stays silent
    assert not firing(prometheus, "WirewatchNoFrames")

    # routed by the shipped Alertmanager config: each of Prometheus' change-point alerts either reaches the
    # process-control webhook, or is inhibited there by the daemon's own MorphologyChanged alert (its
    # alertmanager sink, shipped compose config) for the same instrument and statistic, which arrives instead
    def am_alerts(alertname: str) -> list[dict[str, Any]]:
        query_string = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
        alerts: list[dict[str, Any]] = get_json(f"{alertmanager.url}/api/v2/alerts?{query_string}")
        return alerts

    def accounted_for() -> dict[str, str]:
        delivered = {r["labels"]["statistic"] for r in process_control.received
                     if r["alertname"] == "WirewatchChangePointDetected" and r["status"] == "firing"}
        daemon_statistics = {a["labels"].get("statistic") for a in am_alerts("MorphologyChanged")}
        outcome = {}
        for a in am_alerts("WirewatchChangePointDetected"):
            statistic = a["labels"]["statistic"]
            if statistic in delivered:
                outcome[statistic] = "delivered"
            elif a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]:
                assert statistic in daemon_statistics, "inhibited without a daemon alert for that statistic"
                assert a["labels"]["instrument"] == "simulator"
                outcome[statistic] = "inhibited"
        return outcome if statistics <= set(outcome) else {}

    outcome = wait_for("every change-point alert delivered or inhibited", accounted_for, 30, logs=logs)
    received_daemon_alerts = wait_for(
        "the daemon's MorphologyChanged alert at the receiver",
        lambda: [r for r in process_control.received if r["alertname"] == "MorphologyChanged"], 30, logs=logs)
    assert received_daemon_alerts[0]["receiver"] == "process-control"
    assert received_daemon_alerts[0]["labels"]["instrument"] == "simulator"
    inhibited = {s for s, how in outcome.items() if how == "inhibited"}
    assert inhibited <= {r["labels"]["statistic"] for r in process_control.received
                         if r["alertname"] == "MorphologyChanged"} | {
        a["labels"]["statistic"] for a in am_alerts("MorphologyChanged")}

    check_dashboard_queries(prometheus)


def check_dashboard_queries(prometheus: Server) -> None:
    """Each panel and annotation query of the shipped dashboard runs without error against this
    Prometheus, and the panels an operator watches first (and the change-point annotation) have data."""
    dashboard = json.loads(DASHBOARD.read_text())
    empty = []
    for where, expr in dashboard_exprs(dashboard):
        promql = expr.replace("$__rate_interval", "1m").replace('"$instance"', '".*"')
        if not query(prometheus, promql):  # query() asserts status success: the PromQL is valid
            empty.append(where)
    # errors and alert-delivery panels may legitimately be empty on a healthy run
    for must_have in ("panel 'Frames processed / s'", "panel 'Frames / s'", "panel 'Particle count'",
                      "panel 'Length (pixels)'", "panel 'Width (pixels)'", "panel 'Aspect ratio (long / short side)'",
                      "panel 'Orientation'", "panel 'Stage latency p50 / p99'", "panel 'Coverage'",
                      "panel 'Frame latency (receipt to publication)'", "panel 'Change points per statistic'",
                      "panel 'Firing alerts'", "annotation 'Change points'", "annotation 'Firing alerts'"):
        assert not [w for w in empty if w.startswith(must_have)], f"{must_have}: no data (empty: {empty})"


# ------------------------------------------------------------------------------------------ the receiver alone


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


WEBHOOK: dict[str, Any] = {
    "version": "4", "status": "firing", "receiver": "process-control", "groupKey": "{}:{alertname=\"X\"}",
    "alerts": [{"status": "firing", "labels": {"alertname": "WirewatchNoFrames", "severity": "warning",
                                               "instance": "mic1:9108"},
                "annotations": {"summary": "no frames"}, "startsAt": "2026-11-26T20:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc"}],
}


def test_process_control_receiver_logs_alerts_and_rejects_garbage(tmp_path: Path) -> None:
    module = load_receiver_module()
    out = io.StringIO()
    log = tmp_path / "alerts.jsonl"
    receiver = module.Receiver("127.0.0.1", 0, out=out, log_path=log).start()
    url = f"http://127.0.0.1:{receiver.port}/alerts"
    try:
        assert post(url, json.dumps(WEBHOOK).encode()) == (200, {"accepted": 1})
        line = json.loads(out.getvalue())
        assert line["alertname"] == "WirewatchNoFrames" and line["status"] == "firing"
        assert line["labels"]["instance"] == "mic1:9108" and line["severity"] == "warning"
        assert json.loads(log.read_text()) == line
        assert get_json(url)["alerts"] == [line]
        # bad bodies: a 400 that names the problem, nothing logged
        for body, problem in [(b"{not json", "not JSON"), (b"[1]", "JSON object"),
                              (json.dumps({**WEBHOOK, "version": "3"}).encode(), "version"),
                              (json.dumps({**WEBHOOK, "alerts": [{"labels": {}}]}).encode(), "alertname"),
                              (json.dumps({**WEBHOOK, "alerts": [{**WEBHOOK["alerts"][0], "status": "x"}]}).encode(),
                               "status")]:
            status, doc = post(url, body)
            assert status == 400 and problem in doc["error"], (body, doc)
        status, doc = post(url, b"x" * (module.MAX_BODY_BYTES + 1))
        assert status == 413
        assert len(receiver.received) == 1 and len(log.read_text().splitlines()) == 1
        assert post(f"http://127.0.0.1:{receiver.port}/other", b"{}")[0] == 404
    finally:
        receiver.close()


def test_process_control_receiver_token() -> None:
    module = load_receiver_module()
    receiver = module.Receiver("127.0.0.1", 0, out=io.StringIO(), token="s3cret").start()
    url = f"http://127.0.0.1:{receiver.port}/alerts"
    try:
        assert post(url, json.dumps(WEBHOOK).encode())[0] == 401
        assert post(url, json.dumps(WEBHOOK).encode(), {"Authorization": "Bearer wrong"})[0] == 401
        assert post(url, json.dumps(WEBHOOK).encode(), {"Authorization": "Bearer s3cret"})[0] == 200
        assert len(receiver.received) == 1
    finally:
        receiver.close()


# ------------------------------------------------------------------------------------------ container health checks


def dockerfile_healthcheck(name: str) -> list[str]:
    """The exec-form command of a Dockerfile's HEALTHCHECK."""
    text = (DEPLOY / "docker" / name).read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK"))
    command: list[str] = json.loads(line[line.index("CMD") + 3:].strip())
    return command


def run_check(command: list[str], env: dict[str, str]) -> int:
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


def test_health_checks_and_sigterm_of_the_daemon_as_containers_run_it(tmp_path: Path) -> None:
    """`wirewatch run` with the compose config and the image's environment: the Dockerfile and compose
    health checks pass while it runs and fail once it is gone; SIGTERM ends it with exit 0 well within the
    compose stop_grace_period / systemd TimeoutStopSec."""
    import os
    import signal

    port = free_port()
    wirewatch = Path(sys.executable).with_name("wirewatch")
    env = {**os.environ,
           "WIREWATCH_INGEST__ENDPOINT": f"tcp://127.0.0.1:{free_port()}",  # no detector: healthy anyway
           "WIREWATCH_HTTP__HOST": "127.0.0.1", "WIREWATCH_HTTP__PORT": str(port),
           "WIREWATCH_SEGMENT__BACKEND": "watershed", "WIREWATCH_RECORD__PATH": str(tmp_path / "record.jsonl"),
           "WIREWATCH_ALERTS__SINKS": "[]", "WIREWATCH_PUBLISH__ZMQ": "null"}
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(wirewatch), "run", "--config", str(ROOT / "config" / "wirewatch-compose.yaml")],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return resp.status == 200

        wait_for("the daemon's /healthz", healthy, 60, logs=(log,))
        image_check = dockerfile_healthcheck("Dockerfile.cpu")
        assert dockerfile_healthcheck("Dockerfile.gpu") == image_check
        assert run_check(image_check, env) == 0
        compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
        compose_check = [a.replace(":9108/", f":{port}/") for a in compose["services"]["wirewatch"]["healthcheck"]["test"]]
        assert compose_check[0] == "CMD"
        assert run_check(compose_check[1:], env) == 0

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
        assert time.monotonic() - started < 15
        assert run_check(image_check, env) != 0
        assert run_check(compose_check[1:], env) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
