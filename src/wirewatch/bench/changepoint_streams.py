"""Series with known change points for the change-point evaluation (``wirewatch.changepoint.evaluate``).

- synthetic piecewise signals from ruptures (``pw_constant``, ``pw_normal``) with
  noise, optional slow drifts, outliers and missing values (``synthetic_stream``);
- the simulator's scenarios (``wirewatch.simulate``): each frame is drawn by the
  synthesiser and measured with ``wirewatch.stats.measure`` on the generator's
  ground-truth masks (no segmenter in the loop, for speed), ``scenario_stream``.

Here, not in ``wirewatch.changepoint``: the runtime's change-point stage imports neither the simulator,
the synthesiser nor the measurer (issue 41's import rules).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import ruptures as rpt
from ruptures.utils import draw_bkps

from wirewatch.changepoint.config import DEFAULT_STATISTICS
from wirewatch.changepoint.evaluate import EvalStream
from wirewatch.records import FrameRecord, read_record

# Realistic levels / noise of the default statistics (as measured on the demo scenario), so the
# synthetic streams exercise the robust scaling with different units per column.
LEVELS = {"length_px_mean": (70.0, 4.0), "width_px_mean": (5.5, 0.25), "particle_count": (12.0, 2.0),
           "orientation_order": (0.2, 0.08), "aspect_ratio_mean": (13.0, 1.0)}


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
        level, sigma = LEVELS.get(name, (0.0, 1.0))
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
        rows = [dict(r.stats) for r in read_record(cache)]  # record lines: null read back as NaN
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
            tmp.write_bytes(b"".join(FrameRecord(frame=f, stats=r).to_line() for f, r in enumerate(rows)))
            tmp.replace(cache)
    columns = {s: np.array([float(r.get(s, np.nan)) for r in rows]) for s in stats}
    truth = tuple(c for c in scenario.change_points if c < n)
    return EvalStream(name=f"{scenario.name}-{scenario.seed}", frames=np.arange(n), stats=columns, truth=truth)

