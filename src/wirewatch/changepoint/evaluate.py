"""Evaluation harness: precision / recall / F1 at a margin, detection delay, false-alarm rate, cost.

Streams come from two sources:

- synthetic piecewise signals from ruptures (``pw_constant``, ``pw_normal``) with
  noise, optional slow drifts, outliers and missing values (``synthetic_stream``);
- the simulator's scenarios (``wirewatch.simulate``): each frame is drawn by the
  synthesiser and measured with ``wirewatch.stats.measure`` on the generator's
  ground-truth masks (no segmenter in the loop, for speed), ``scenario_stream``.

Matching follows ``ruptures.metrics.precision_recall``: a detection within
``margin`` frames (strictly) of a true change counts once. Delay is
``detected_at - true frame`` over matched changes. False alarms per 1000 frames
are counted on change-free streams.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ruptures as rpt
from ruptures.metrics import precision_recall as ruptures_precision_recall
from ruptures.utils import draw_bkps

from wirewatch.changepoint.config import DEFAULT_STATISTICS, ChangepointConfig
from wirewatch.changepoint.streaming import StreamingDetector, build_detector
from wirewatch.types import ChangePoint

MARGIN = 10

# Realistic levels / noise of the default statistics (as measured on the demo scenario), so the
# synthetic streams exercise the robust scaling with different units per column.
_LEVELS = {"length_px_mean": (70.0, 4.0), "width_px_mean": (5.5, 0.25), "particle_count": (12.0, 2.0),
           "orientation_order": (0.2, 0.08), "aspect_ratio_mean": (13.0, 1.0)}


@dataclass(frozen=True)
class EvalStream:
    """One series to score: frame ids, statistic columns (NaN = missing) and the true change frames."""

    name: str
    frames: np.ndarray
    stats: Mapping[str, np.ndarray]
    truth: tuple[int, ...] = ()
    # every annotator's changes (TCPD-style series); empty: ``truth`` is the one annotation
    annotations: tuple[tuple[int, ...], ...] = ()

    def annotators(self) -> list[list[int]]:
        """The annotations to score against: each annotator's changes, or ``truth`` alone."""
        return [list(a) for a in self.annotations] if self.annotations else [list(self.truth)]

    def rows(self) -> list[dict[str, float]]:
        names = list(self.stats)
        matrix = np.column_stack([self.stats[n] for n in names])
        return [dict(zip(names, row, strict=True)) for row in matrix.tolist()]


@dataclass(frozen=True)
class StreamResult:
    stream: str
    n_frames: int
    truth: tuple[int, ...]
    detected: tuple[ChangePoint, ...]
    matched: tuple[tuple[int, int], ...]  # (true frame, index into detected)
    cpu_seconds: float

    @property
    def true_positives(self) -> int:
        return len(self.matched)

    @property
    def delays(self) -> list[int]:
        return [self.detected[i].detected_at - t for t, i in self.matched]


@dataclass(frozen=True)
class Summary:
    """Scores over a set of streams (micro-averaged: counts are pooled before dividing)."""

    name: str
    streams: int
    frames: int
    true_changes: int
    detections: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    mean_delay: float
    false_alarms_per_1000: float  # over the change-free streams of the set (NaN when there are none)
    ms_per_frame: float  # CPU time of update() per frame
    results: tuple[StreamResult, ...] = field(default=(), repr=False)

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "streams", "frames", "true_changes", "detections",
                                              "true_positives", "precision", "recall", "f1", "mean_delay",
                                              "false_alarms_per_1000", "ms_per_frame")}


def match(truth: Sequence[int], detected: Sequence[int], margin: int = MARGIN) -> list[tuple[int, int]]:
    """(true frame, detection index) pairs counted exactly as ``ruptures.metrics.precision_recall`` does.

    A true change matches the first unused detection strictly within ``margin``; like ruptures,
    every other unused detection within the margin of it is used up too (duplicates are false
    positives, they never match a neighbouring change).
    """
    used: set[int] = set()
    pairs = []
    for t in truth:
        first = None
        for i, d in enumerate(detected):
            if d - margin < t < d + margin and i not in used:
                used.add(i)
                if first is None:
                    first = i
        if first is not None:
            pairs.append((t, first))
    return pairs


def precision_recall(truth: Sequence[int], detected: Sequence[int], n_frames: int,
                     margin: int = MARGIN) -> tuple[float, float]:
    """ruptures.metrics.precision_recall on frame lists (both need at least one change)."""
    p, r = ruptures_precision_recall([*sorted(truth), n_frames], [*sorted(detected), n_frames], margin=margin)
    return float(p), float(r)


def run_stream(stream: EvalStream, detector: StreamingDetector, margin: int = MARGIN) -> StreamResult:
    detector.reset()
    rows = stream.rows()
    events: list[ChangePoint] = []
    start = time.process_time()
    for frame, row in zip(stream.frames.tolist(), rows, strict=True):
        events.extend(detector.update(frame, row))
    cpu = time.process_time() - start
    pairs = match(stream.truth, [e.frame for e in events], margin)
    return StreamResult(stream=stream.name, n_frames=len(rows), truth=stream.truth, detected=tuple(events),
                        matched=tuple(pairs), cpu_seconds=cpu)


def summarise(name: str, results: Sequence[StreamResult]) -> Summary:
    n_true = sum(len(r.truth) for r in results)
    n_det = sum(len(r.detected) for r in results)
    tp = sum(r.true_positives for r in results)
    precision = tp / n_det if n_det else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if n_true and (precision + recall) > 0 else (
        float("nan") if not n_true else 0.0)
    delays = [d for r in results for d in r.delays]
    free = [r for r in results if not r.truth]
    free_frames = sum(r.n_frames for r in free)
    fa = 1000.0 * sum(len(r.detected) for r in free) / free_frames if free_frames else float("nan")
    frames = sum(r.n_frames for r in results)
    cpu = sum(r.cpu_seconds for r in results)
    return Summary(name=name, streams=len(results), frames=frames, true_changes=n_true, detections=n_det,
                   true_positives=tp, precision=precision, recall=recall, f1=f1,
                   mean_delay=float(np.mean(delays)) if delays else float("nan"),
                   false_alarms_per_1000=fa, ms_per_frame=1000.0 * cpu / frames if frames else float("nan"),
                   results=tuple(results))


def evaluate(name: str, streams: Iterable[EvalStream], config: ChangepointConfig | None = None,
             margin: int = MARGIN, progress: Callable[[str], None] | None = None) -> Summary:
    """Run one detector (built once, reset per stream) over every stream and pool the scores."""
    streams = list(streams)
    config = config or ChangepointConfig()
    names = list(streams[0].stats) if streams else list(config.stats)
    detector = build_detector(config.with_stats(names) if names != list(config.stats) else config)
    results = []
    for stream in streams:
        results.append(run_stream(stream, detector, margin))
        if progress is not None:
            progress(stream.name)
    return summarise(name, results)


# -- synthetic streams ----------------------------------------------------------------------------------
def synthetic_stream(kind: str, seed: int, *, n_frames: int = 600, n_changes: int = 4,
                     delta: tuple[float, float] = (1.0, 2.0), drift: float = 0.0, outliers: float = 0.0,
                     missing: float = 0.0, stats: Sequence[str] = DEFAULT_STATISTICS) -> EvalStream:
    """A piecewise signal in robust-sigma units, mapped to realistic levels of ``stats``.

    ``kind``: ``pw_constant`` (every statistic jumps by uniform(delta) sigma, random sign),
    ``sparse`` (one random statistic jumps by uniform(delta) sigma), ``pw_normal`` (ruptures'
    2-D correlation change; the first two statistics), ``null`` (no change).
    ``drift``: a linear drift of that many sigma over the stream on one statistic;
    ``outliers``: fraction of samples replaced by +-(6..10) sigma spikes; ``missing``: fraction of
    frames dropped entirely (all NaN) plus half as many with one statistic NaN.
    """
    rng = np.random.default_rng(seed)
    d = len(stats)
    truth: list[int]
    if kind == "pw_constant":
        signal, bkps = rpt.pw_constant(n_frames, d, n_changes, noise_std=1.0, delta=delta, seed=seed)
        truth = bkps[:-1]
    elif kind == "sparse":
        signal = rng.standard_normal((n_frames, d))
        truth = draw_bkps(n_frames, n_changes, seed=seed)[:-1]
        for b in truth:
            j = int(rng.integers(d))
            signal[b:, j] += rng.choice([-1.0, 1.0]) * rng.uniform(*delta)
    elif kind == "pw_normal":
        pair, bkps = rpt.pw_normal(n_frames, n_changes, seed=seed)
        signal = rng.standard_normal((n_frames, d))
        signal[:, :2] = pair
        truth = bkps[:-1]
    elif kind == "null":
        signal = rng.standard_normal((n_frames, d))
        truth = []
    else:
        raise ValueError(f"unknown synthetic stream kind {kind!r}; known: pw_constant, sparse, pw_normal, null")
    signal = np.asarray(signal, float)
    if drift:
        signal[:, int(rng.integers(d))] += np.linspace(0.0, drift, n_frames)
    if outliers:
        hit = rng.random(signal.shape) < outliers / d
        signal[hit] += rng.choice([-1.0, 1.0], hit.sum()) * rng.uniform(6.0, 10.0, hit.sum())
    if missing:
        signal[rng.random(n_frames) < missing] = np.nan
        partial = np.flatnonzero(rng.random(n_frames) < missing / 2)
        signal[partial, rng.integers(d, size=partial.size)] = np.nan
    columns = {}
    for j, name in enumerate(stats):
        level, sigma = _LEVELS.get(name, (0.0, 1.0))
        columns[name] = level + sigma * signal[:, j]
    label = f"{kind}-{seed}"
    return EvalStream(name=label, frames=np.arange(n_frames), stats=columns, truth=tuple(int(b) for b in truth))


# -- simulator scenarios --------------------------------------------------------------------------------
def scenario_stream(name_or_path: str | Path, *, seed: int | None = None, frames: int | None = None,
                    stats: Sequence[str] = DEFAULT_STATISTICS, cache_dir: Path | None = None,
                    progress: Callable[[int, int], None] | None = None) -> EvalStream:
    """A simulator scenario measured frame by frame from the synthesiser's ground-truth masks.

    The statistics are cached as JSON Lines in ``cache_dir`` (keyed by the scenario's content),
    so the evaluation table can be re-run quickly.
    """
    from wirewatch.simulate import resolve_scenario
    from wirewatch.stats.measure import measure
    from wirewatch.synth.generate import generate

    scenario = resolve_scenario(name_or_path)
    if seed is not None:
        scenario = scenario.model_validate({**scenario.model_dump(), "seed": seed})
    n = scenario.frames if frames is None else frames
    key = hashlib.sha256(json.dumps([scenario.model_dump(mode="json"), n], sort_keys=True).encode()).hexdigest()[:16]
    cache = None if cache_dir is None else Path(cache_dir) / f"{scenario.name}-{scenario.seed}-{key}.jsonl"
    rows: list[dict[str, float]] = []
    if cache is not None and cache.exists():
        rows = [json.loads(line)["stats"] for line in cache.read_text().splitlines() if line.strip()]
    if len(rows) != n:
        rows = []
        for f in range(n):
            sample = generate(scenario.config_at(f), scenario.seed_for(f))
            agg = measure(sample.masks, sample.od, pixel_size_nm=scenario.pixel_size_nm, frame_id=f).aggregates
            rows.append({k: float(v) for k, v in agg.items()})
            if progress is not None:
                progress(f + 1, n)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps({"frame": f, "stats": _jsonable(r)}) + "\n" for f, r in enumerate(rows)))
            tmp.replace(cache)
    columns = {s: np.array([_float(r.get(s)) for r in rows]) for s in stats}
    truth = tuple(c for c in scenario.change_points if c < n)
    return EvalStream(name=f"{scenario.name}-{scenario.seed}", frames=np.arange(n), stats=columns, truth=truth)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _jsonable(row: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (v if np.isfinite(v) else None) for k, v in row.items()}


# -- TCPDBench scores: F1 with the series start as a change, covering; the zero-alarm baseline --------------
TCPD_MARGIN = 5


def _true_positives(truth: set[int], detected: set[int], margin: int) -> int:
    """TCPDBench ``true_positives``: each true change takes the closest unused detection within ``margin``."""
    remaining = set(detected)
    count = 0
    for t in sorted(truth):
        close = [d for d in remaining if abs(d - t) <= margin]
        if close:
            remaining.discard(min(close, key=lambda d: (abs(d - t), d)))
            count += 1
    return count


def tcpd_f1(annotations: Sequence[Sequence[int]], detected: Sequence[int], margin: int = TCPD_MARGIN) -> float:
    """F1 as in van den Burg & Williams (2020): precision against the union of the annotators' changes,
    recall averaged over annotators; the series start (0) counts as a change for both."""
    pred = {0, *detected}
    union = {0, *(c for a in annotations for c in a)}
    precision = _true_positives(union, pred, margin) / len(pred)
    recall = float(np.mean([_true_positives({0, *a}, pred, margin) / len({0, *a}) for a in annotations]))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _partition(cps: Sequence[int], n: int) -> list[set[int]]:
    bounds = sorted({0, n, *(c for c in cps if 0 < c < n)})
    return [set(range(a, b)) for a, b in itertools.pairwise(bounds)]


def covering(annotations: Sequence[Sequence[int]], detected: Sequence[int], n: int) -> float:
    """Covering metric (segment overlap, Arbelaez et al. 2011, as in TCPDBench), averaged over annotators."""
    pred = _partition(detected, n)
    scores = []
    for a in annotations:
        total = 0.0
        for seg in _partition(a, n):
            total += len(seg) * max(len(seg & p) / len(seg | p) for p in pred)
        scores.append(total / n)
    return float(np.mean(scores))


@dataclass(frozen=True)
class CorpusScore:
    family: str
    detector: str
    f1: float  # mean over the family's streams
    covering: float
    zero_f1: float  # the zero-alarm baseline on the same streams
    zero_covering: float
    detections: int
    true_changes: int  # the union of the annotators' changes, summed over streams
    ms_per_frame: float
    # per stream: name, frames, f1, covering, zero_f1, zero_covering, detected frames
    streams: tuple[dict[str, Any], ...] = ()

    def row(self) -> dict[str, Any]:
        return {**self.__dict__, "streams": list(self.streams)}


def score_corpus(family: str, detector_name: str, streams: Sequence[EvalStream], config: ChangepointConfig,
                 margin: int = TCPD_MARGIN) -> CorpusScore:
    """Run one detector over a family's streams; TCPDBench F1 and covering beside the zero baseline."""
    f1s, covs, z1, zc = [], [], [], []
    per_stream = []
    detections = true_changes = 0
    cpu = 0.0
    frames = 0
    for stream in streams:
        names = list(stream.stats)
        detector = build_detector(config.with_stats(names))
        result = run_stream(stream, detector, margin)
        found = sorted({e.frame for e in result.detected})
        n = len(stream.frames)
        truth = stream.annotators()
        f1s.append(tcpd_f1(truth, found, margin))
        covs.append(covering(truth, found, n))
        z1.append(tcpd_f1(truth, [], margin))
        zc.append(covering(truth, [], n))
        detections += len(found)
        true_changes += len(set().union(*truth))
        cpu += result.cpu_seconds
        frames += n
        per_stream.append({"name": stream.name, "frames": n, "f1": f1s[-1], "covering": covs[-1],
                           "zero_f1": z1[-1], "zero_covering": zc[-1], "detected": found})
    return CorpusScore(family=family, detector=detector_name, f1=float(np.mean(f1s)), covering=float(np.mean(covs)),
                       zero_f1=float(np.mean(z1)), zero_covering=float(np.mean(zc)), detections=detections,
                       true_changes=true_changes, ms_per_frame=1000 * cpu / max(frames, 1),
                       streams=tuple(per_stream))


DETECTORS: dict[str, dict[str, Any]] = {
    "default (binseg/linear + trend CUSUM)": {},
    "bocpd (+ binseg/linear)": {"online": {"method": "bocpd"}},
    "bocpd alone": {"online": {"method": "bocpd"}, "windowed": {"enabled": False}},
    "binseg/linear alone": {"online": {"enabled": False}},
    "issue 6 (binseg/l2 + level CUSUM; no calibration)": {
        "windowed": {"cost": "l2", "share": 0.5}, "online": {"trend": False, "share": 0.5},
        "calibration": {"enabled": False},
        "false_alarms_per_1000": 0.3},
}


TCPD_FAMILY = "TCPD (real annotated series)"


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m wirewatch.changepoint.evaluate [--quick] [--tcpd FOLDER] [--json OUT]``: the score table."""
    import argparse

    from wirewatch.changepoint.corpus import corpus

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


if __name__ == "__main__":
    main()
