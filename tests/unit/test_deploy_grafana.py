"""The Grafana dashboard (generated as code) and its provisioning."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.unit.test_deploy_metrics import DASHBOARD, DEPLOY, dashboard_exprs

GRAFANA = DEPLOY / "grafana"
COMPOSE = DEPLOY / "compose.yaml"


def generator() -> ModuleType:
    path = GRAFANA / "generate_dashboard.py"
    spec = importlib.util.spec_from_file_location("wirewatch_generate_dashboard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_checked_in_json_is_what_the_generator_writes(tmp_path: Path) -> None:
    gen = generator()
    assert DASHBOARD.read_text(encoding="utf-8") == gen.render(), \
        "deploy/grafana/dashboards/wirewatch.json is stale: run python deploy/grafana/generate_dashboard.py"
    assert gen.main(["--check"]) == 0
    stale = tmp_path / "old.json"
    stale.write_text("{}")
    assert gen.main(["--check", "--out", str(stale)]) == 1
    assert gen.main(["--out", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == DASHBOARD.read_text(encoding="utf-8")


def test_panel_ids_titles_and_layout(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels(dashboard)]
    assert len(titles) == len(set(titles))
    occupied: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & occupied, f"panel {p['title']!r} overlaps another"
        occupied |= cells


def test_every_panel_queries_the_provisioned_prometheus(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["includeAll"] and variables["instance"]["multi"]
    for p in panels(dashboard):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]
            if "wirewatch_" in t["expr"]:  # filtered by the instance picker
                assert 'instance=~"$instance"' in t["expr"], f"{p['title']}: {t['expr']}"


def _exprs_of(dashboard: dict[str, Any], title_pattern: str) -> str:
    found = [t["expr"] for p in panels(dashboard) if re.search(title_pattern, p["title"]) for t in p["targets"]]
    assert found, f"no panel titled like {title_pattern!r}"
    return "\n".join(found)


def test_the_operator_sees_what_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    assert "rate(wirewatch_frames_processed_total" in _exprs_of(dashboard, r"^Frames / s$")
    drops = _exprs_of(dashboard, r"^Drops and errors")
    assert "wirewatch_frames_dropped_total" in drops and "wirewatch_frame_errors_total" in drops
    stages = _exprs_of(dashboard, r"^Stage latency")
    assert "histogram_quantile(0.5" in stages and "histogram_quantile(0.99" in stages and "stage" in stages
    assert "wirewatch_particle_count" in _exprs_of(dashboard, r"^Particle count$")
    assert "wirewatch_particle_length_mean_pixels" in _exprs_of(dashboard, r"^Length \(pixels\)$")
    assert "wirewatch_particle_width_mean_pixels" in _exprs_of(dashboard, r"^Width \(pixels\)$")
    assert "wirewatch_particle_aspect_ratio_mean_ratio" in _exprs_of(dashboard, r"^Aspect ratio")
    orientation = _exprs_of(dashboard, r"^Orientation$")
    assert "wirewatch_orientation_mean_degrees" in orientation and "wirewatch_orientation_order_ratio" in orientation
    assert 'ALERTS{alertstate="firing"' in _exprs_of(dashboard, r"^Firing alerts$")
    # change points as annotations on the time panels
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    cp = annotations["Change points"]
    assert cp["enable"] and "wirewatch_changepoints_total" in cp["expr"] and "{{statistic}}" in cp["titleFormat"]
    assert "offset" in cp["expr"]  # catches a statistic's first change point (a new counter series)


def test_units_are_set_for_physical_quantities(dashboard: dict[str, Any]) -> None:
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in panels(dashboard)}
    assert units["Stage latency p50 / p99"] == "s"
    assert units["Length and width (physical, needs a pixel size)"] == "lengthm"
    assert units["Orientation"] == "degree"
    assert units["Drop ratio"] == "percentunit"


def test_expressions_are_balanced(dashboard: dict[str, Any]) -> None:
    for where, expr in dashboard_exprs(dashboard):
        for open_, close in ("()", "{}", "[]"):
            assert expr.count(open_) == expr.count(close), f"{where}: unbalanced {open_}{close} in {expr!r}"
        assert "{{" not in expr, f"{where}: a legend template leaked into the query"


# ------------------------------------------------------------------------------------------ provisioning


def test_datasource_provisioning_points_at_the_compose_services() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "wirewatch.yaml").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    assert doc["apiVersion"] == 1
    sources = {d["type"]: d for d in doc["datasources"]}
    prom = sources["prometheus"]
    assert prom["isDefault"] is True and prom["access"] == "proxy"
    m = re.fullmatch(r"http://([\w-]+):(\d+)", prom["url"])
    assert m and m.group(1) == "prometheus" and m.group(1) in compose["services"]
    assert f"--web.listen-address=0.0.0.0:{m.group(2)}" in compose["services"]["prometheus"]["command"]
    # $__rate_interval needs the scrape interval of the wirewatch job
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom_cfg["scrape_configs"] if j["job_name"] == "wirewatch")
    assert prom["jsonData"]["timeInterval"] == job["scrape_interval"]
    assert sources["alertmanager"]["url"] == "http://alertmanager:9093"


def test_dashboard_provider_reads_the_mounted_dashboards() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "wirewatch.yaml").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    provider = doc["providers"][0]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"]}
    assert mounts[path] == "./grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{DASHBOARD.name}"
