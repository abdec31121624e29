"""Every metric the shipped alert rules and dashboard query is one the daemon really exports.

The exported names come from the registry of a daemon pipeline built from config (the same
``build_pipeline`` that ``wirewatch run`` uses), fed by a file source so no socket is opened.
The helpers here are imported by the other ``test_deploy_*`` modules and the system test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "wirewatch.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "wirewatch.json"

# Series that Prometheus itself makes: scrape health and the state of its alert rules.
PROMETHEUS_SERIES = {"up", "ALERTS"}

_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "atan2", "inf", "nan", "Inf", "NaN"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([a-zA-Z_:][\w:]*)")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (function names, keywords and label names excluded)."""
    s = _STRING.sub('""', expr)
    s = re.sub(r"\{[^}]*\}", "{}", s)  # label matchers (and Grafana $variables inside them)
    s = re.sub(r"\[[^\]]*\]", "[]", s)  # range and subquery durations ($__rate_interval)
    s = _LABEL_LIST.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        if s[m.end():].lstrip().startswith("("):  # a function call
            continue
        if m.group(1) not in _KEYWORDS:
            names.add(m.group(1))
    return names


def _sample_names(family: Any) -> set[str]:
    """Series names a metric family exposes, also when it has no labelled child yet."""
    name, kind = family.name, family.type
    if kind == "counter":
        return {f"{name}_total", f"{name}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "info":
        return {f"{name}_info"}
    return {name} | {s.name for s in family.samples}


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name the daemon's registry can expose, from a pipeline built like ``wirewatch run``."""
    import tempfile

    from wirewatch.config.daemon import load_daemon_config
    from wirewatch.daemon.build import build_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(Path(tmp) / "000000.png")
        config = load_daemon_config(None, environ={}, overrides={
            "ingest": {"source": "files", "path": tmp}, "segment": {"backend": "watershed"},
            "publish": {"zmq": None}, "http": {"enabled": False}})
        built = build_pipeline(config)
        try:
            names = {n for family in built.registry.collect() for n in _sample_names(family)}
        finally:
            built.pipeline.close_sinks()
    return frozenset(names)


def rule_exprs() -> Iterator[tuple[str, str]]:
    """(rule name, expr) of every rule in the shipped rule file."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation of a dashboard JSON model."""
    def walk(panels: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]


def dashboard_variable_metrics(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(variable, metric) for each ``label_values(metric, label)`` template variable."""
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for m in re.finditer(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,", text):
            yield var["name"], m.group(1)


# ---------------------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize(("expr", "expected"), [
    ('sum by (job, instance, reason) (rate(wirewatch_frames_dropped_total{instance=~"$instance"}[5m]))',
     {"wirewatch_frames_dropped_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(wirewatch_stage_latency_seconds_bucket"
     '{stage="total"}[$__rate_interval]))) > 1', {"wirewatch_stage_latency_seconds_bucket"}),
    ("a / on (job) group_left sum by (job) (b) > 0.5 unless c offset 10m", {"a", "b", "c"}),
    ('count(ALERTS{alertstate="firing", alertname=~"Wirewatch.*"}) or vector(0)', {"ALERTS"}),
    ("wirewatch_number_density_per_square_meter / 1e12 + time() - up", {"wirewatch_number_density_per_square_meter",
                                                                          "up"}),
    ('max_over_time(x{a="by (b)"}[2m]) == 0 and bool y', {"x", "y"}),
])
def test_promql_metric_names(expr: str, expected: set[str]) -> None:
    assert promql_metric_names(expr) == expected


def test_exported_names_cover_the_contract() -> None:
    names = exported_metric_names()
    # docs/CONTRACTS.md, "Prometheus metrics"
    for name in ("wirewatch_frames_received_total", "wirewatch_frames_processed_total",
                 "wirewatch_frames_dropped_total", "wirewatch_frame_errors_total",
                 "wirewatch_stage_latency_seconds_bucket", "wirewatch_particle_count",
                 "wirewatch_changepoints_total", "wirewatch_alerts_sent_total", "wirewatch_alert_spool_depth"):
        assert name in names
    assert all(n.startswith("wirewatch_") for n in names)


# ---------------------------------------------------------------------------------------- the checks


def test_every_alert_rule_queries_exported_metrics() -> None:
    exported = exported_metric_names()
    seen: set[str] = set()
    for name, expr in rule_exprs():
        used = promql_metric_names(expr)
        assert used, f"rule {name}: no metric found in {expr!r}"
        unknown = used - exported - PROMETHEUS_SERIES
        assert not unknown, f"rule {name} queries metrics the daemon does not export: {sorted(unknown)}"
        seen |= used
    # the rules cover the list: frames, drops, errors, latency, change points, particle statistics
    for needed in ("wirewatch_frames_received_total", "wirewatch_frames_dropped_total",
                   "wirewatch_frame_errors_total", "wirewatch_stage_latency_seconds_bucket",
                   "wirewatch_changepoints_total", "wirewatch_particle_count"):
        assert needed in seen


def test_every_dashboard_query_names_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_metric_names()
    exprs = list(dashboard_exprs(dashboard))
    assert len(exprs) >= 25
    used_all: set[str] = set()
    for where, expr in exprs:
        used = promql_metric_names(expr)
        assert used, f"{where}: no metric in {expr!r}"
        unknown = used - exported - PROMETHEUS_SERIES
        assert not unknown, f"{where} queries metrics the daemon does not export: {sorted(unknown)}"
        used_all |= used
    for var, metric in dashboard_variable_metrics(dashboard):
        assert metric in exported, f"template variable {var} reads {metric}, which the daemon does not export"
    # every per-frame statistic gauge the daemon defines is on the dashboard
    from wirewatch.daemon.metrics import STAT_GAUGES

    missing = {metric for metric, _, _ in STAT_GAUGES.values()} - used_all
    assert not missing, f"statistic gauges missing from the dashboard: {sorted(missing)}"
