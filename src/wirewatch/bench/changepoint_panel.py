"""The whole panel of issue 38 for several candidate configurations, and the rule that picks the default.

``python -m wirewatch.bench.changepoint_panel [--tcpd FOLDER] [--quick] [--candidates 'A|B'] [--json OUT]``
scores each candidate (a ``changepoint:`` config, as a dict) on every set the issue names, beside the
zero-alarm baseline where it has one:

- the generated corpus (``bench.changepoint_corpus``): mean TCPDBench F1 / covering over its families;
- TCPD-format real series (``--tcpd``; e.g. the Turing Change Point Dataset): mean F1 / covering;
- clean steps of 1-2 sigma per statistic (ruptures ``pw_constant``, 5 statistics, 20 x 600 frames):
  F1 at a 10-frame margin and mean delay (goal F1 >= 0.9, delay <= 20);
- steps of 0.5-1 sigma, same streams: F1 (issue 6 reached 0.975);
- a steady trend with noise, 1 % outliers and 2 % gaps, no change (10 x 2000 frames): most alarms in
  one series (goal <= 2);
- speed: CPU ms per frame of ``update()`` with 40 statistics (goal <= 1).

The rule (``choose``), written down before the candidates were scored: among the candidates that meet
every hard goal (clean steps F1 >= 0.9 and delay <= 20, at most 2 alarms on every steady-trend series,
<= 1 ms per frame for 40 statistics) and score at least the zero baseline on the corpus and on TCPD,
and that keep the existing tests passing (a house rule, checked outside this module with
``pytest tests/system/test_demo.py`` for the pick: the daemon must find the 90-frame demo's width change),
take the one with the highest mean of three F1 scores - corpus, TCPD, 0.5-1 sigma steps - each set
counted once, so that no single set decides; within 0.005 of the best, the one with the fewest settings
changed from the first-session default, then the faster (first written "the faster" alone; changed after
the exploratory --quick run, before the full run, because timing differences of 10 % are noise on a
shared machine). TCPD used this way is a development set: its scores of the chosen default are no longer
held-out figures.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.bench.changepoint_corpus import corpus, trend_no_change
from wirewatch.bench.changepoint_streams import synthetic_stream
from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.evaluate import EvalStream, evaluate, score_corpus

GATES = {"confirm_windowed": True, "min_relative_effect": 0.2}  # issue 38, second session: see docs

CANDIDATES: dict[str, dict[str, Any]] = {
    "A: first-session default (binseg/linear + trend CUSUM)": {},
    "B: A + windowed breaks confirmed + relative effect >= 0.2": dict(GATES),
    "C: B + residual-scale t": {**GATES, "residual_units": True},
    "D: B + seasonal removal": {**GATES, "seasonal": {"enabled": True, "min_acf": 0.6}},
    "E: B + BOCPD online": {**GATES, "online": {"method": "bocpd"}},
    "F: B + budget 2 / 1000": {**GATES, "false_alarms_per_1000": 2.0},
    "G: B + CUSUM tuned for 1-sigma shifts": {**GATES, "online": {"shift": 1.0}},
    "H: A + BOCPD online": {"online": {"method": "bocpd"}},
    # an l2 (constant-mean) search proposes steps with its full power; every candidate is then judged
    # against lines on each side (means where flat), so trends and bends are still no changes
    "I: l2 search judged by lines, 0.5 / 0.5 budget": {**GATES, "flat_t": 1.0, "residual_units": True,
                                                       "windowed": {"cost": "l2", "share": 0.5},
                                                       "online": {"share": 0.5}},
    "J: I + CUSUM tuned for 1-sigma shifts": {**GATES, "flat_t": 1.0, "residual_units": True,
                                               "windowed": {"cost": "l2", "share": 0.5},
                                               "online": {"share": 0.5, "shift": 1.0}},
    # L and O fail tests/system/test_demo.py: the k = 0.5 CUSUM needs h = 7.5 (k = 1: 3.8) for the same
    # budget, and the demo's width change (a short burst of ~2.3 sigma in the watershed measurement) stays under it
    "L: B + flat means + CUSUM tuned for 1-sigma shifts": {**GATES, "flat_t": 1.0, "online": {"shift": 1.0}},
    "M: B + flat means": {**GATES, "flat_t": 1.0},
    "N: M + short records warm up on a quarter of their length": {**GATES, "flat_t": 1.0,
                                                                  "short_record_warmup": 0.25},
    "O: L + short records warm up on a quarter of their length": {**GATES, "flat_t": 1.0, "online": {"shift": 1.0},
                                                                  "short_record_warmup": 0.25},
    # issue 38, third session: the bends of smooth growth curves (TCPD us_population, global_co2). Each dict
    # changes the defaults in force when it was written: A..O the first session's, P..R N's; with R the
    # default, {} is R and "N*" below is N
    # (curve t in the detector's noise units, discounted by the noise inflation like its other t statistics;
    # t >= 4 without that discount failed test_changepoint_gates' 0.1 sigma / frame kink)
    "P: default + slope changes beat a quadratic (curve t >= 2)": {"curve_t": 2.0},
    "P4: default + slope changes beat a quadratic (curve t >= 4)": {"curve_t": 4.0},
    "Q: default + relative effect >= 0.4": {"min_relative_effect": 0.4},
    "R: P + Q": {"curve_t": 2.0, "min_relative_effect": 0.4},
    "N*: N, written over R's defaults": {"curve_t": 0.0, "min_relative_effect": 0.2},
    "K: I without residual-scale t": {**GATES, "flat_t": 1.0, "windowed": {"cost": "l2", "share": 0.5},
                                      "online": {"share": 0.5}},
}

HARD = {"steps_f1": 0.9, "steps_delay": 20.0, "trend_max_alarms": 2, "ms_40": 1.0}


def _steps(delta: tuple[float, float], n: int) -> list[EvalStream]:
    return [synthetic_stream("pw_constant", s, delta=delta) for s in range(n)]


def score_candidate(name: str, config: Mapping[str, Any], *, tcpd: list[EvalStream] | None,
                    quick: bool = False, speed: bool = True) -> dict[str, Any]:
    """Every set of the panel for one candidate (a dict of ``changepoint:`` settings)."""
    from wirewatch.bench.changepoint import update_cost

    cfg = ChangepointConfig.model_validate(dict(config))
    row: dict[str, Any] = {"name": name, "config": dict(config)}
    fams = [score_corpus(f, name, s, cfg) for f, s in corpus(quick).items()]
    row["corpus_f1"] = float(np.mean([f.f1 for f in fams]))
    row["corpus_covering"] = float(np.mean([f.covering for f in fams]))
    row["corpus_zero_f1"] = float(np.mean([f.zero_f1 for f in fams]))
    row["corpus_families"] = {f.family: round(f.f1, 3) for f in fams}
    if tcpd is not None:
        t = score_corpus("TCPD", name, tcpd, cfg)
        row.update(tcpd_f1=t.f1, tcpd_covering=t.covering, tcpd_zero_f1=t.zero_f1,
                   tcpd_zero_covering=t.zero_covering, tcpd_detections=t.detections,
                   tcpd_series={s["name"]: round(s["f1"], 3) for s in t.streams})
    n = 8 if quick else 20
    clean = evaluate("steps 1-2", _steps((1.0, 2.0), n), cfg)
    small = evaluate("steps 0.5-1", _steps((0.5, 1.0), n), cfg)
    row.update(steps_f1=clean.f1, steps_delay=clean.mean_delay, small_f1=small.f1, small_delay=small.mean_delay)
    trend = evaluate("trend", [trend_no_change(3000 + s) for s in range(5 if quick else 10)], cfg)
    row["trend_alarms"] = [len(r.detected) for r in trend.results]
    row["trend_max_alarms"] = max(row["trend_alarms"])
    if speed:
        stats40 = [f"s{j}" for j in range(40)]
        row["ms_40"] = update_cost(cfg.with_stats(stats40), n_frames=1500 if quick else 3000)["cpu_ms_per_frame"]
    return row


def meets(row: Mapping[str, Any]) -> bool:
    ok = (row["steps_f1"] >= HARD["steps_f1"] and row["steps_delay"] <= HARD["steps_delay"]
          and row["trend_max_alarms"] <= HARD["trend_max_alarms"] and row.get("ms_40", 0.0) <= HARD["ms_40"]
          and row["corpus_f1"] >= row["corpus_zero_f1"])
    return ok and ("tcpd_f1" not in row or row["tcpd_f1"] >= row["tcpd_zero_f1"])


def panel_score(row: Mapping[str, Any]) -> float:
    parts = [row["corpus_f1"], row["small_f1"]] + ([row["tcpd_f1"]] if "tcpd_f1" in row else [])
    return float(np.mean(parts))


def choose(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The rule of the module docstring: the name of the chosen candidate (None if none meets the goals)."""
    ok = [r for r in rows if meets(r)]
    if not ok:
        return None
    best = max(panel_score(r) for r in ok)
    near = [r for r in ok if panel_score(r) >= best - 0.005]
    return str(min(near, key=lambda r: (_settings(r["config"]), r.get("ms_40", 0.0)))["name"])


def _settings(config: Mapping[str, Any]) -> int:
    """How many leaf settings a candidate changes."""
    return sum(_settings(v) if isinstance(v, Mapping) else 1 for v in config.values())


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The table for docs/changepoint.md."""
    head = ("| candidate | corpus F1 / cov (zero {cz}) | TCPD F1 / cov (zero {tz}) | 1-2 sigma F1 / delay | "
            "0.5-1 sigma F1 | trend: most alarms | ms/frame, 40 stats | goals | panel score |")
    r0 = rows[0]
    lines = [head.format(cz=f"{r0['corpus_zero_f1']:.3f}", tz=f"{r0.get('tcpd_zero_f1', math.nan):.3f}"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        tc = f"{r['tcpd_f1']:.3f} / {r['tcpd_covering']:.3f}" if "tcpd_f1" in r else "-"
        lines.append(f"| {r['name']} | {r['corpus_f1']:.3f} / {r['corpus_covering']:.3f} | {tc} | "
                     f"{r['steps_f1']:.3f} / {r['steps_delay']:.1f} | {r['small_f1']:.3f} | {r['trend_max_alarms']} | "
                     f"{r.get('ms_40', math.nan):.2f} | {'met' if meets(r) else 'not met'} | {panel_score(r):.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    from wirewatch.changepoint.tcpd import read_folder

    logging.getLogger("wirewatch.changepoint").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m wirewatch.bench.changepoint_panel", description=__doc__.split("\n")[0])
    parser.add_argument("--tcpd", type=Path, default=None, metavar="FOLDER", help="a TCPD-format folder")
    parser.add_argument("--quick", action="store_true", help="fewer streams per set (a rough look)")
    parser.add_argument("--candidates", default="|".join(CANDIDATES), help="'|'-separated names from the list")
    parser.add_argument("--no-speed", action="store_true", help="skip the 40-statistic timing")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    tcpd = read_folder(args.tcpd) if args.tcpd is not None else None
    rows = []
    for name in [c for c in args.candidates.split("|") if c]:
        if name not in CANDIDATES:
            parser.error(f"unknown candidate {name!r}; known: {list(CANDIDATES)}")
        rows.append(score_candidate(name, CANDIDATES[name], tcpd=tcpd, quick=args.quick, speed=not args.no_speed))
        r = rows[-1]
        print(f"{name}: corpus {r['corpus_f1']:.3f} TCPD {r.get('tcpd_f1', math.nan):.3f} steps {r['steps_f1']:.3f}/"
              f"{r['steps_delay']:.1f} small {r['small_f1']:.3f} trend max {r['trend_max_alarms']} "
              f"ms40 {r.get('ms_40', math.nan):.2f} score {panel_score(r):.3f} goals {meets(r)}", flush=True)
    print(markdown(rows))
    print(f"chosen by the rule: {choose(rows)}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
