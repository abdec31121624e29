"""The shipped Prometheus and Alertmanager configs pass the real tools, and the rule unit tests bite.

``promtool check config`` / ``check rules`` / ``test rules`` and ``amtool check-config`` /
``config routes test`` from the Debian packages ``prometheus`` and ``prometheus-alertmanager``
(installed by ``.ci/run``). No sockets: the tools only read files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_deploy_metrics import DEPLOY, ROOT, RULES

PROM_DIR = DEPLOY / "prometheus"
RULE_TESTS = PROM_DIR / "tests" / "wirewatch.rules.test.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE = DEPLOY / "compose.yaml"

promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool not installed (Debian package prometheus; .ci/run installs it)")
amtool = pytest.mark.skipif(shutil.which("amtool") is None,
                            reason="amtool not installed (Debian package prometheus-alertmanager; .ci/run installs it)")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=cwd)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def alert_names() -> set[str]:
    return {rule["alert"] for rule in alert_rules()}


# ------------------------------------------------------------------------------------------ promtool


@promtool
def test_promtool_check_config_finds_and_accepts_the_rules() -> None:
    result = run("promtool", "check", "config", PROM_DIR / "prometheus.yml")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "SUCCESS: 1 rule files found" in out
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


@promtool
def test_promtool_check_rules() -> None:
    result = run("promtool", "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@promtool
def test_promtool_rule_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _mutated_run(tmp_path: Path, mutate: Any, *, drop_for: bool = False) -> set[str]:
    """Run the rule unit tests against a rule file whose every alert expr went through ``mutate``
    (and lost its ``for:`` when ``drop_for``); returns the alert names whose test cases failed."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = mutate(rule["expr"])
                if drop_for:
                    rule.pop("for", None)
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = run("promtool", "test", "rules", RULE_TESTS.name, cwd=tmp_path / "tests")
    assert result.returncode != 0, "the rule unit tests passed against broken rules"
    return set(re.findall(r"alertname: (\w+), time:", result.stdout + result.stderr))


@promtool
def test_every_alert_has_a_firing_case(tmp_path: Path) -> None:
    """With every alert made unable to fire, each alert's unit tests must fail."""
    failed = _mutated_run(tmp_path, lambda expr: f"({expr}) and on() vector(0) > 1")
    assert failed == alert_names()


@pytest.mark.slow  # ~4 s of CPU (every alert firing at every evaluation); the file structure is checked below
@promtool
def test_every_alert_has_a_silent_case(tmp_path: Path) -> None:
    """With every alert made to fire at once and all the time (a label-less extra series), each alert's
    'no alert expected' cases must fail."""
    failed = _mutated_run(tmp_path, lambda expr: f"({expr}) or vector(1)", drop_for=True)
    assert failed == alert_names()


def test_rule_tests_name_every_alert_and_only_real_ones() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    assert doc["rule_files"] == [f"../rules/{RULES.name}"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == alert_names()
    assert silent == alert_names()


# ------------------------------------------------------------------------------------------ rule content


def test_alert_rules_cover_the_issue_list() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert "increase(wirewatch_frames_received_total[1m]) == 0" in exprs["WirewatchNoFrames"]  # 60 s
    assert "wirewatch_frames_dropped_total" in exprs["WirewatchDropRatioHigh"]
    assert "wirewatch_frame_errors_total" in exprs["WirewatchErrorRateHigh"]
    assert "histogram_quantile(0.99" in exprs["WirewatchLatencyP99High"]
    assert "wirewatch_changepoints_total" in exprs["WirewatchChangePointDetected"]
    particle_rules = [n for n, e in exprs.items() if re.search(r"wirewatch_particle_\w+", e)]
    assert len(particle_rules) >= 4


def test_every_alert_has_severity_summary_and_description() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert re.fullmatch(r"Wirewatch[A-Z]\w+", rule["alert"]), "alert names start with Wirewatch (dashboard filter)"


# ------------------------------------------------------------------------------------------ Prometheus config


def test_prometheus_scrapes_the_compose_daemon_and_alerts_the_compose_alertmanager() -> None:
    prom = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    daemon_cfg = yaml.safe_load((ROOT / "config" / "wirewatch-compose.yaml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    targets = [t for sc in jobs["wirewatch"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"wirewatch:{daemon_cfg['http']['port']}"]
    assert "wirewatch" in compose["services"]
    assert daemon_cfg["http"]["host"] == "0.0.0.0"  # reachable from the prometheus container
    assert jobs["wirewatch"].get("metrics_path", "/metrics") == "/metrics"
    am_targets = [t for am in prom["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert am_targets == ["alertmanager:9093"]
    assert "alertmanager" in compose["services"]
    # the rule glob finds the shipped rule file, relative to prometheus.yml as Prometheus resolves it,
    # both here and inside the container (where the compose file mounts both)
    assert [p.name for g in prom["rule_files"] for p in PROM_DIR.glob(g)] == [RULES.name]
    service = compose["services"]["prometheus"]
    config_file = next(a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.file="))
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    assert (DEPLOY / mounts[config_file]).resolve() == PROM_DIR / "prometheus.yml"
    container_dir = Path(config_file).parent
    for pattern in prom["rule_files"]:
        rules_dir = str(container_dir / Path(pattern).parent)
        assert (DEPLOY / mounts[rules_dir]).resolve() == RULES.parent
    # `for:` durations are meaningful only with an evaluation interval well below them
    assert prom["global"]["evaluation_interval"] in ("5s", "10s", "15s")


# ------------------------------------------------------------------------------------------ Alertmanager


@amtool
def test_amtool_check_config() -> None:
    result = run("amtool", "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 inhibit rules" in result.stdout


@amtool
@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=WirewatchDown", "severity=critical"], "process-control"),
    (["alertname=WirewatchChangePointDetected", "severity=warning", "statistic=width_px_mean"], "process-control"),
    (["alertname=MorphologyChanged", "severity=warning", "instrument=simulator"], "process-control"),
    (["alertname=Something", "severity=info"], "dashboard-only"),
])
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    result = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_change_point_alerts_of_prometheus_and_the_daemon_pair_up() -> None:
    """The inhibit rule that keeps one change from notifying twice matches labels both sides really carry."""
    am = yaml.safe_load(ALERTMANAGER.read_text())
    (rule,) = [r for r in am["inhibit_rules"] if 'alertname="WirewatchChangePointDetected"' in r["target_matchers"]]
    daemon_alertname = re.fullmatch(r'alertname="(\w+)"', rule["source_matchers"][0])
    assert daemon_alertname and rule["equal"] == ["instrument", "statistic"]
    # the daemon side: a changepoint rule of that name, with an instrument label, in every shipped config
    # that posts to Alertmanager (its alerts carry `statistic` from the rule engine)
    prom = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    scrape_instrument = next(j for j in prom["scrape_configs"]
                             if j["job_name"] == "wirewatch")["static_configs"][0]["labels"]["instrument"]
    compose_cfg = yaml.safe_load((ROOT / "config" / "wirewatch-compose.yaml").read_text())["alerts"]
    k8s_cfg = yaml.safe_load(yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())["data"]["wirewatch.yaml"])
    monitor = yaml.safe_load((DEPLOY / "k8s" / "servicemonitor.yaml").read_text())
    k8s_instrument = next(r["replacement"] for r in monitor["spec"]["endpoints"][0]["relabelings"]
                          if r["targetLabel"] == "instrument")
    for cfg, instrument in ((compose_cfg, scrape_instrument), (k8s_cfg["alerts"], k8s_instrument)):
        assert any(r["kind"] == "changepoint" and r["name"] == daemon_alertname.group(1) for r in cfg["rules"])
        assert cfg["labels"]["instrument"] == instrument
        assert any(s["type"] == "alertmanager" for s in cfg["sinks"])
    # the Prometheus side keeps `instrument` and `statistic` in the alert's labels
    expr = next(r["expr"] for r in alert_rules() if r["alert"] == "WirewatchChangePointDetected")
    assert all("instrument, statistic" in by for by in re.findall(r"sum by \(([^)]*)\)", expr))


def test_alertmanager_webhook_reaches_the_process_control_service() -> None:
    am = yaml.safe_load(ALERTMANAGER.read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    hook = receivers["process-control"]["webhook_configs"][0]
    assert hook["send_resolved"] is True  # process control hears when the condition clears
    m = re.fullmatch(r"http://([\w-]+):(\d+)(/\S*)", hook["url"])
    assert m, hook["url"]
    host, port, path = m.groups()
    service = compose["services"][host]
    command = service["command"]
    assert command[command.index("--port") + 1] == port
    assert path == "/alerts"
    assert am["route"]["receiver"] == "process-control"
    # the compose service reads this very file
    service = compose["services"]["alertmanager"]
    config_file = next(a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.file="))
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    assert (DEPLOY / mounts[config_file]).resolve() == ALERTMANAGER
