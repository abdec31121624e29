#!/usr/bin/env python3
"""Write the operator dashboard ``deploy/grafana/dashboards/wirewatch.json`` (Grafana 10/11 JSON model).

The dashboard is code: edit this file, run it, commit both. ``tests/unit/test_deploy_grafana.py``
fails when the JSON differs from what this script writes, or when a query names a metric the
daemon does not export. Standard library only, so it runs anywhere::

    python deploy/grafana/generate_dashboard.py            # rewrite the JSON
    python deploy/grafana/generate_dashboard.py --check    # exit 1 if the JSON is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "wirewatch.json"
UID = "wirewatch-operator"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'  # every query is filtered by the instance variable
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat | table | barchart
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    decimals: int | None = None
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    overrides: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    stack: bool = False
    bars: bool = False


def q(expr: str, legend: str = "", *, instant: bool = False) -> Query:
    return Query(expr, legend, instant)


def quantiles(metric: str, stage_filter: str, by: str, qs: tuple[float, ...], legend: str) -> tuple[Query, ...]:
    return tuple(
        q(f"histogram_quantile({x}, sum by ({by}le) (rate({metric}_bucket{{{SEL}{stage_filter}}}[{RATE}])))",
          legend.format(q=f"p{round(x * 100)}"))
        for x in qs)


def events(metric: str, by: str, window: str = RATE) -> str:
    """Increments of an event counter per ``by`` labels over ``window``. A labelled counter series is born
    at its first event with value 1, which increase() cannot see (no earlier sample): the ``unless offset``
    part adds series that did not exist one window earlier."""
    sel = f"{metric}{{{SEL}}}"
    return (f"sum by ({by}) (increase({sel}[{window}])) > 0 "
            f"or sum by ({by}) ({sel} unless {sel} offset {window})")


# ------------------------------------------------------------------------------------------ rows
OVERVIEW = (
    Panel("Frames processed / s", (q(f"sum(rate(wirewatch_frames_processed_total{{{SEL}}}[{RATE}]))"),),
          kind="stat", unit="reqps", width=4, height=4, decimals=2,
          description="Frames segmented, measured and published per second, all selected instances.",
          thresholds=((None, "red"), (0.1, "green"))),
    Panel("Drop ratio", (q(f"sum(rate(wirewatch_frames_dropped_total{{{SEL}}}[{RATE}])) / "
                           f"sum(rate(wirewatch_frames_received_total{{{SEL}}}[{RATE}]))"),),
          kind="stat", unit="percentunit", width=4, height=4, decimals=1,
          description="Received frames not processed (all reasons). With policy latest and a fast detector "
                      "a high ratio is expected: only the newest frame is segmented.",
          thresholds=((None, "green"), (0.5, "orange"), (0.9, "red"))),
    Panel("Rejected messages / s", (q(f"sum(rate(wirewatch_frame_errors_total{{{SEL}}}[{RATE}])) or vector(0)"),),
          kind="stat", unit="reqps", width=4, height=4, decimals=2,
          description="Malformed or unusable messages, all kinds.",
          thresholds=((None, "green"), (0.01, "orange"), (1, "red"))),
    Panel("p99 latency (receipt to publication)",
          quantiles("wirewatch_stage_latency_seconds", ',stage="total"', "", (0.99,), ""),
          kind="stat", unit="s", width=4, height=4, decimals=2,
          thresholds=((None, "green"), (0.5, "orange"), (1, "red"))),
    Panel("Particles in the latest frame", (q(f"sum(wirewatch_particle_count{{{SEL}}})"),),
          kind="stat", unit="short", width=4, height=4, decimals=0),
    Panel("Alerts firing now",
          (q('count(ALERTS{alertstate="firing", alertname=~"Wirewatch.*"}) or vector(0)'),),
          kind="stat", unit="short", width=4, height=4, decimals=0,
          description="Prometheus alert rules of deploy/prometheus/rules now firing.",
          thresholds=((None, "green"), (1, "red"))),
)

THROUGHPUT = (
    Panel("Frames / s", (
        q(f"sum by (instance) (rate(wirewatch_frames_received_total{{{SEL}}}[{RATE}]))", "received {{instance}}"),
        q(f"sum by (instance) (rate(wirewatch_frames_processed_total{{{SEL}}}[{RATE}]))", "processed {{instance}}"),
    ), unit="reqps", description="Received counts every message at the socket (before drops and decoding); "
                                 "processed counts frames published."),
    Panel("Drops and errors / s", (
        q(f"sum by (instance, reason) (rate(wirewatch_frames_dropped_total{{{SEL}}}[{RATE}]))",
          "dropped: {{reason}} {{instance}}"),
        q(f"sum by (instance, kind) (rate(wirewatch_frame_errors_total{{{SEL}}}[{RATE}]))",
          "error: {{kind}} {{instance}}"),
    ), unit="reqps", stack=True),
    Panel("Queues", (
        q(f"wirewatch_raw_buffer_messages{{{SEL}}}", "raw buffer {{instance}}"),
        q(f"wirewatch_queue_depth{{{SEL}}}", "{{queue}} {{instance}}"),
        q(f"wirewatch_record_backlog_lines{{{SEL}}}", "record backlog {{instance}}"),
    ), unit="short", description="Items waiting between stages; a growing record backlog means the disk fails."),
    Panel("Latest frame", (
        q(f"wirewatch_last_frame_id{{{SEL}}}", "frame id {{instance}}"),
        q(f"time() - wirewatch_last_frame_timestamp_seconds{{{SEL}}}", "age (s) {{instance}}"),
    ), unit="short", description="Id of the latest processed frame, and seconds since it was acquired "
                                 "(detector clock)."),
)

LATENCY = (
    Panel("Stage latency p50 / p99",
          quantiles("wirewatch_stage_latency_seconds", ',stage!="total"', "stage, ", (0.5, 0.99), "{{stage}} {q}"),
          unit="s", description="Per pipeline stage: decode, preprocess, segment, measure, changepoint, publish."),
    Panel("Frame latency (receipt to publication)",
          quantiles("wirewatch_stage_latency_seconds", ',stage="total"', "instance, ", (0.5, 0.9, 0.99),
                    "{q} {{instance}}"),
          unit="s", thresholds=((None, "green"), (1, "red")),
          description="Quantiles of the total stage; the WirewatchLatencyP99High alert fires above 1 s."),
)

PARTICLES = (
    Panel("Particle count", (q(f"wirewatch_particle_count{{{SEL}}}", "count {{instance}}"),), unit="short"),
    Panel("Coverage", (q(f"wirewatch_coverage_ratio{{{SEL}}}", "covered fraction {{instance}}"),),
          unit="percentunit"),
    Panel("Length (pixels)", (
        q(f"wirewatch_particle_length_mean_pixels{{{SEL}}}", "mean {{instance}}"),
        q(f"wirewatch_particle_length_median_pixels{{{SEL}}}", "median {{instance}}"),
    ), unit="short"),
    Panel("Width (pixels)", (
        q(f"wirewatch_particle_width_mean_pixels{{{SEL}}}", "mean {{instance}}"),
        q(f"wirewatch_particle_width_median_pixels{{{SEL}}}", "median {{instance}}"),
    ), unit="short"),
    Panel("Length and width (physical, needs a pixel size)", (
        q(f"wirewatch_particle_length_mean_meters{{{SEL}}}", "length mean {{instance}}"),
        q(f"wirewatch_particle_width_mean_meters{{{SEL}}}", "width mean {{instance}}"),
    ), unit="lengthm"),
    Panel("Aspect ratio (long / short side)", (
        q(f"wirewatch_particle_aspect_ratio_mean_ratio{{{SEL}}}", "mean {{instance}}"),
    ), unit="short", thresholds=((None, "red"), (2, "green"))),
    Panel("Orientation", (
        q(f"wirewatch_orientation_mean_degrees{{{SEL}}}", "mean angle {{instance}}"),
        q(f"wirewatch_orientation_order_ratio{{{SEL}}}", "order S {{instance}}"),
    ), unit="degree",
        description="Mean angle (degrees counter-clockwise from +x, 0-180) and the orientational order "
                    "S = |mean exp(2i theta)| (0 random, 1 aligned; right axis).",
        overrides=({"matcher": {"id": "byRegexp", "options": "order S.*"},
                    "properties": [{"id": "unit", "value": "percentunit"},
                                   {"id": "custom.axisPlacement", "value": "right"},
                                   {"id": "min", "value": 0}, {"id": "max", "value": 1}]},)),
    Panel("Area, density, optical density, overlap", (
        q(f"wirewatch_particle_area_mean_pixels{{{SEL}}}", "area mean (px) {{instance}}"),
        q(f"wirewatch_number_density_per_square_meter{{{SEL}}} / 1e12", "particles per µm² {{instance}}"),
        q(f"wirewatch_particle_optical_density_mean_ratio{{{SEL}}}", "OD mean {{instance}}"),
        q(f"wirewatch_particle_overlap_mean_ratio{{{SEL}}}", "overlap mean {{instance}}"),
    ), unit="short",
        overrides=({"matcher": {"id": "byRegexp", "options": "area.*"},
                    "properties": [{"id": "custom.axisPlacement", "value": "right"}]},)),
    Panel("Segmentation reliability", (
        q(f"wirewatch_segmentation_reliability_ratio{{{SEL}}}", "reliability {{instance}}"),
    ), unit="percentunit", thresholds=((None, "red"), (0.45, "green")),
        description="0-1 per frame: agreement of the masks with a model-free foreground, the model's own "
                    "confidence, fragments, plausible wire width. Below 0.45 change points are held back as "
                    "suspect and SegmentationUnreliable fires."),
    Panel("Image quality (instrument)", (
        q(f"wirewatch_image_blur_pixels{{{SEL}}}", "edge blur px {{instance}}"),
        q(f"wirewatch_image_shift_pixels{{{SEL}}}", "shift px {{instance}}"),
        q(f"wirewatch_image_background_level{{{SEL}}}", "background level {{instance}}"),
        q(f"wirewatch_image_wire_width_pixels{{{SEL}}}", "wire width px {{instance}}"),
    ), unit="short",
        description="Refocus (blur), stage drift (shift against the previous frame), beam or gain (background "
                    "level), magnification (typical wire width, median of 61 frames). A change point that "
                    "coincides with a step of blur, shift or background is attributed to the instrument.",
        overrides=({"matcher": {"id": "byRegexp", "options": "background.*"},
                    "properties": [{"id": "custom.axisPlacement", "value": "right"}]},)),
)

CHANGES_AND_ALERTS = (
    Panel("Change points per statistic", (
        q(events("wirewatch_changepoints_total", "statistic, detector"), "{{statistic}} ({{detector}})"),
    ), unit="short", bars=True, decimals=0,
        description="Also drawn as red annotations on every time panel."),
    Panel("Firing alerts", (
        q('ALERTS{alertstate="firing", alertname=~"Wirewatch.*"}', instant=True),
    ), kind="table", unit="short",
        description="Prometheus rules firing now. Alerts the daemon raises itself (change points, thresholds) "
                    "go to Alertmanager directly: see the next panel."),
    Panel("Alerts raised by the daemon / delivery", (
        q(events("wirewatch_alerts_total", "alertname, state"), "{{alertname}} {{state}}"),
        q(events("wirewatch_alerts_sent_total", "sink, result"), "sent to {{sink}}: {{result}}"),
    ), unit="short", bars=True, decimals=0),
    Panel("Alert spool (undelivered webhook alerts)", (
        q(f"wirewatch_alert_spool_depth{{{SEL}}}", "spooled {{instance}}"),
    ), unit="short", thresholds=((None, "green"), (1, "orange"))),
)

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Overview", OVERVIEW),
    ("Throughput, drops and errors", THROUGHPUT),
    ("Latency", LATENCY),
    ("Particle statistics", PARTICLES),
    ("Change points and alerts", CHANGES_AND_ALERTS),
)

CHANGEPOINT_ANNOTATION = events("wirewatch_changepoints_total", "statistic, detector", "1m")


# ------------------------------------------------------------------------------------------ JSON model
def _target(query: Query, ref: str) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": DS, "expr": query.expr, "refId": ref,
                              "legendFormat": query.legend or "__auto", "range": not query.instant,
                              "instant": query.instant}
    if query.instant:
        target["format"] = "table"
    return target


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in panel.thresholds]
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps},
                                "color": {"mode": "thresholds" if panel.kind == "stat" else "palette-classic"}}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line", "lineWidth": 1, "fillOpacity": 60 if panel.bars else 10,
            "showPoints": "never", "spanNulls": False,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"}}
    out: dict[str, Any] = {
        "id": pid, "type": panel.kind, "title": panel.title, "description": panel.description, "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [_target(query, chr(ord("A") + i)) for i, query in enumerate(panel.queries)],
        "fieldConfig": {"defaults": defaults, "overrides": list(panel.overrides)},
    }
    if panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "background", "graphMode": "area", "textMode": "value"}
    elif panel.kind == "table":
        out["options"] = {"showHeader": True, "sortBy": [{"displayName": "severity", "desc": False}]}
        out["transformations"] = [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True},
            "indexByName": {"alertname": 0, "severity": 1, "instance": 2}}}]
    else:
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                          "tooltip": {"mode": "multi", "sort": "none"}}
    return out


def build_dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        pid, y, x, row_height = pid + 1, y + 1, 0, 0
        for panel in row:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel(panel, pid, x, y))
            pid, x, row_height = pid + 1, x + panel.width, max(row_height, panel.height)
        y += row_height
    return {
        "uid": UID,
        "title": "wirewatch: nanowire monitoring",
        "description": "Operator view of the wirewatch daemon: throughput, drops, latency, particle statistics, "
                       "change points and alerts. Generated by deploy/grafana/generate_dashboard.py.",
        "tags": ["wirewatch"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "links": [],
        "annotations": {"list": [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
             "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
            {"name": "Change points", "datasource": DS, "enable": True, "iconColor": "red", "expr":
             CHANGEPOINT_ANNOTATION, "step": "15s", "titleFormat": "Change point: {{statistic}}",
             "textFormat": "detector {{detector}}", "tagKeys": "statistic,detector", "useValueForTime": False},
            {"name": "Firing alerts", "datasource": DS, "enable": True, "iconColor": "orange",
             "expr": 'ALERTS{alertstate="firing", alertname=~"Wirewatch.*"}', "step": "30s",
             "titleFormat": "{{alertname}}", "textFormat": "{{instance}} severity {{severity}}",
             "tagKeys": "alertname,severity", "useValueForTime": False},
        ]},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False},
            {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
             "query": {"query": "label_values(wirewatch_frames_processed_total, instance)", "refId": "instance"},
             "definition": "label_values(wirewatch_frames_processed_total, instance)",
             "current": {}, "hide": 0, "refresh": 2, "regex": "", "sort": 1, "includeAll": True, "multi": True,
             "allValue": ".*"},
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in JSON is stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(build_dashboard()['panels'])} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
