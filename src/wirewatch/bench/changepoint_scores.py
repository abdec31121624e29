"""The change-point score table: ``python -m wirewatch.changepoint.evaluate`` (the documented command
forwards here): TCPDBench F1 and covering of each compared detector over the generated corpus
(``bench.changepoint_corpus``), optionally the simulator's demo scenario and TCPD-format series, beside the
zero-alarm baseline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.bench.changepoint_streams import scenario_stream
from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.evaluate import CorpusScore, score_corpus

# the first session's judgement of a break (before issue 38's panel chose the gates; docs/changepoint.md)
FIRST_SESSION = {"confirm_windowed": False, "min_relative_effect": 0.0, "flat_t": 0.0, "short_record_warmup": 0.0,
                 "curve_t": 0.0}

DETECTORS: dict[str, dict[str, Any]] = {
    "default (binseg/linear + trend CUSUM)": {},
    "first-session default (no gates)": dict(FIRST_SESSION),
    "bocpd (+ binseg/linear)": {"online": {"method": "bocpd"}},
    "bocpd alone": {"online": {"method": "bocpd"}, "windowed": {"enabled": False}},
    "binseg/linear alone": {"online": {"enabled": False}},
    "issue 6 (binseg/l2 + level CUSUM; no calibration)": {
        "windowed": {"cost": "l2", "share": 0.5}, "online": {"trend": False, "share": 0.5},
        "calibration": {"enabled": False},
        "false_alarms_per_1000": 0.3, **FIRST_SESSION},
}


TCPD_FAMILY = "TCPD (real annotated series)"


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m wirewatch.changepoint.evaluate [--quick] [--tcpd FOLDER] [--json OUT]``: the score table."""
    import argparse

    from wirewatch.bench.changepoint_corpus import corpus

    parser = argparse.ArgumentParser(prog="python -m wirewatch.changepoint.evaluate",
                                     description="TCPDBench-style F1 (margin 5) and covering per detector and "
                                                 "family of the generated corpus (and of TCPD-format series), "
                                                 "beside the zero-alarm baseline.")
    parser.add_argument("--quick", action="store_true", help="two streams per family instead of six")
    parser.add_argument("--detectors", default="|".join(DETECTORS), help="'|'-separated names from the list")
    parser.add_argument("--demo", action="store_true", help="also the simulator's demo scenario (seeds 7-9)")
    parser.add_argument("--tcpd", type=Path, default=None, metavar="FOLDER",
                        help="also score the annotated series of a TCPD-format folder (annotations.json at its "
                             "top, <name>.json series files below it)")
    parser.add_argument("--no-corpus", action="store_true", help="skip the generated corpus (e.g. TCPD only)")
    parser.add_argument("--per-series", action="store_true", help="print one line per TCPD series too")
    parser.add_argument("--json", type=Path, default=None, help="write the rows (with per-stream scores) here")
    args = parser.parse_args(argv)
    unknown = [d for d in args.detectors.split("|") if d and d not in DETECTORS]
    if unknown:
        parser.error(f"unknown detector(s) {unknown}; known: {list(DETECTORS)}")
    families = {} if args.no_corpus else corpus(args.quick)
    if args.demo:
        cache = Path.home() / "wirewatch-runs" / "changepoint-cache"
        families["demo scenario (simulated)"] = [scenario_stream("demo", seed=s, cache_dir=cache) for s in (7, 8, 9)]
    if args.tcpd is not None:
        from wirewatch.changepoint.tcpd import read_folder

        families[TCPD_FAMILY] = read_folder(args.tcpd)
    if not families:
        parser.error("nothing to score: give --tcpd FOLDER or leave out --no-corpus")
    names = [d for d in args.detectors.split("|") if d]
    rows: list[CorpusScore] = []
    for name in names:
        config = ChangepointConfig.model_validate(DETECTORS[name])
        for family, streams in families.items():
            rows.append(score_corpus(family, name, streams, config))
            r = rows[-1]
            print(f"{name:52s} {family:50s} F1 {r.f1:.3f} (zero {r.zero_f1:.3f})  covering {r.covering:.3f} "
                  f"(zero {r.zero_covering:.3f})  detections {r.detections:3d} / true {r.true_changes:3d}  "
                  f"{r.ms_per_frame:.2f} ms/frame", flush=True)
            if args.per_series and family == TCPD_FAMILY:
                for st in r.streams:
                    print(f"    {st['name']:24s} n {st['frames']:4d}  F1 {st['f1']:.3f} (zero {st['zero_f1']:.3f})  "
                          f"covering {st['covering']:.3f} (zero {st['zero_covering']:.3f})  "
                          f"detected {st['detected']}", flush=True)
        mine = [r for r in rows if r.detector == name and r.family != TCPD_FAMILY]
        if mine:
            print(f"{name:52s} {'MEAN over corpus families':50s} F1 {np.mean([r.f1 for r in mine]):.3f} (zero "
                  f"{np.mean([r.zero_f1 for r in mine]):.3f})  covering {np.mean([r.covering for r in mine]):.3f} "
                  f"(zero {np.mean([r.zero_covering for r in mine]):.3f})", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([r.row() for r in rows], indent=2) + "\n")
