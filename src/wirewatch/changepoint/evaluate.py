"""Evaluation harness: precision / recall / F1 at a margin, detection delay, false-alarm rate, cost.

It scores ``EvalStream`` series with known change points. The series are made in ``wirewatch.bench``
(outside the runtime package: they draw with the synthesiser and measure with ``wirewatch.stats``):
``bench.changepoint_streams`` (ruptures' piecewise signals, the simulator's scenarios),
``bench.changepoint_corpus`` (the TCPDBench-style corpus); ``changepoint.tcpd`` reads TCPD-format series.

Matching follows ``ruptures.metrics.precision_recall``: a detection within
``margin`` frames (strictly) of a true change counts once. Delay is
``detected_at - true frame`` over matched changes. False alarms per 1000 frames
are counted on change-free streams.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ruptures.metrics import precision_recall as ruptures_precision_recall

from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.streaming import StreamingDetector, build_detector
from wirewatch.types import ChangePoint

MARGIN = 10

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
    detector.expect_frames(len(stream.frames))  # as ``wirewatch changepoints`` does with a record
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m wirewatch.changepoint.evaluate [--quick] [--tcpd FOLDER] [--json OUT]``: the score table.

    The documented command, kept: its body (the detectors compared, the generated corpus, the simulator's
    demo scenario) is ``wirewatch.bench.changepoint_scores``, outside the runtime package (issue 41)."""
    from wirewatch.bench.changepoint_scores import main as score_table

    score_table(argv)


if __name__ == "__main__":
    main()
