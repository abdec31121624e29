"""How steady the wire-width scale is on steady series (issue 44: "the estimated scale must be stable on a
steady series (coefficient of variation < 2 %), or it becomes a source of change points itself").

``python -m wirewatch.bench.scale_stability`` draws, per set, ``--frames`` frames of ``--size`` px with
consecutive seeds of one synth configuration (as the simulator's scenarios draw a steady series: every frame
a new scene of the same kind, no sample or instrument change) and prints, per set, the coefficient of
variation (std / mean) of

- ``raw``: the per-frame estimate ``segment.scale.estimate_wire_width`` (what one frame says);
- ``truth``: the drawn wires' median width per frame (how much the sample itself varies frame to frame);
- ``factor``: the resize ``segment.options.scale: auto`` applies, through ``FitSegmenter.factor_for`` with
  the daemon's ``scale_window`` (9 frames): its CV and how often it switched, over the frames from the one
  that filled the window on; ``factor_nohold``: the same without the hysteresis (``held_factor``), snapping
  the window's median alone;
- ``recorded``: the quality stage's ``iq_wire_width_px`` (``quality.image.ImageQuality``: running median
  over ``WIDTH_FRAMES``), over the frames after its window has filled; ``truth_recorded``: the same running
  median of the drawn widths (what a perfect estimator would record: the residual of the sample's own
  frame-to-frame variation).

``--scenarios demo magnification ...``: each scenario's frames (min-max scaled to 0..1) through
``FitSegmenter.factor_for`` as the daemon runs ``scale: auto``: at which frames the applied factor switched,
with and without the hold, beside the scenario's events.

``--persistent``: the steady series of a real instrument watching one field instead: each set's first frame
every time, with fresh Gaussian noise (sigma 0.02) and a random stage jitter of up to 3 px: the estimator's
own noise.

The sets: the four presets, the evaluation panel's magnified sets (``absorption-2x``, ``absorption-3x``,
``sem-2x``, ``evaluate.panel``), and ``scenario-<name>``: a simulator scenario's frames as the simulator sends
them (``config/scenarios/steady.yaml``: 256 px, its own size). Frames are 0..1 images, as the segmenter gets them.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import deque
from itertools import pairwise
from typing import Any

import numpy as np

from wirewatch.quality.image import WIDTH_FRAMES, ImageQuality
from wirewatch.segment.fit import FitSegmenter
from wirewatch.segment.scale import auto_factor, estimate_wire_width
from wirewatch.synth import SynthConfig, generate, preset_config
from wirewatch.types import Detections

DEFAULT_SETS = ("preset-ptychography", "preset-stxm", "preset-sem", "preset-realistic", "absorption-2x",
                "absorption-3x", "sem-2x", "scenario-steady")
SCALE_WINDOW = 9  # the daemon's default segment.options.scale_window
SEED = 44000


class _Unused:
    """The segmenter FitSegmenter wraps; ``factor_for`` never calls it."""

    name = "unused"

    def segment(self, image: np.ndarray) -> Detections:  # pragma: no cover - never called
        raise AssertionError("factor_for does not segment")


def set_config(name: str, size: int) -> SynthConfig:
    """``preset-<name>`` or any evaluation-panel set name (e.g. ``absorption-2x``)."""
    if name.startswith("preset-"):
        return preset_config(name.removeprefix("preset-"), size)
    from wirewatch.evaluate.panel import panel_sets

    for panel_set in panel_sets():
        if panel_set.name == name:
            return panel_set.config(size)
    raise ValueError(f"unknown set {name!r}: preset-<preset> or an evaluation-panel set name")


def cv(values: list[float] | np.ndarray) -> float:
    """Coefficient of variation (population std / mean) of the finite values; NaN without any."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.std() / v.mean()) if v.size and v.mean() else math.nan


def switches(values: list[float]) -> int:
    return sum(1 for a, b in pairwise(values) if abs(a - b) > 1e-9)


def running_median(values: list[float], frames: int) -> list[float]:
    logs = np.log(np.asarray(values, float))
    return [math.exp(float(np.nanmedian(logs[max(0, i - frames + 1):i + 1]))) for i in range(len(logs))]


def persistent_frames(image: np.ndarray, frames: int, seed: int) -> list[np.ndarray]:
    """``image`` ``frames`` times, each with fresh noise and a jitter of up to 3 px (one field, watched)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
        noisy = np.roll(image, (dy, dx), axis=(0, 1)) + rng.normal(0, 0.02, image.shape).astype(np.float32)
        out.append(np.clip(noisy, 0, 1).astype(np.float32))
    return out


def steady_series(images: list[np.ndarray]) -> dict[str, list[float]]:
    """Per-frame raw estimate, applied factor (with and without hysteresis) and recorded statistic."""
    fitted = FitSegmenter(_Unused(), max_side=None, scale="auto", scale_window=SCALE_WINDOW)
    quality = ImageQuality()
    window: deque[float] = deque(maxlen=SCALE_WINDOW)
    out: dict[str, list[float]] = {"raw": [], "factor": [], "factor_nohold": [], "recorded": []}
    for image in images:
        width = estimate_wire_width(image).width_px
        out["raw"].append(width)
        out["factor"].append(fitted.factor_for(image))
        if math.isfinite(width):
            window.append(math.log(width))
        out["factor_nohold"].append(auto_factor(math.exp(float(np.median(window))) if window else math.nan))
        out["recorded"].append(quality.measure(image, image)["iq_wire_width_px"])
    return out


def _draw(name: str, count: int, size: int, seed: int) -> tuple[list[np.ndarray], list[float], int]:
    """(0..1 frames, the drawn wires' median width per frame, frame size)."""
    if name.startswith("scenario-"):
        from wirewatch.simulate.producer import FrameMaker
        from wirewatch.simulate.scenario import resolve_scenario

        maker = FrameMaker(resolve_scenario(name.removeprefix("scenario-")))
        samples = [maker.sample(i) for i in range(count)]
        pixels = [maker.image(i) for i in range(count)]
    else:
        cfg = set_config(name, size)
        samples = [generate(cfg, seed + i) for i in range(count)]
        pixels = [s.image for s in samples]
    images = [np.asarray(p, np.float32) / np.float32(255.0) for p in pixels]
    truth = [float(np.median([w.width for w in s.wires])) if s.wires else math.nan for s in samples]
    return images, truth, images[0].shape[0]


def measure_set(name: str, *, frames: int = 160, size: int = 512, seed: int = SEED,
                persistent: bool = False) -> dict[str, Any]:
    images, truth, size = _draw(name, 1 if persistent else frames, size, seed)
    if persistent:
        images, truth = persistent_frames(images[0], frames, seed), truth * frames
    series = steady_series(images)
    steady = slice(SCALE_WINDOW - 1, None)  # the applied factor once scale_window frames are in
    filled = slice(WIDTH_FRAMES - 1, None)  # iq_wire_width_px once its window has filled
    return {"set": name, "series": "persistent" if persistent else "independent", "frames": frames, "size": size,
            "raw_mean_px": round(float(np.nanmean(series["raw"])), 2),
            "cv_raw": cv(series["raw"]), "cv_truth": cv(truth),
            "cv_factor": cv(series["factor"][steady]), "switches": switches(series["factor"][steady]),
            "cv_factor_nohold": cv(series["factor_nohold"][steady]),
            "switches_nohold": switches(series["factor_nohold"][steady]),
            "cv_recorded": cv(series["recorded"][filled]),
            "cv_truth_recorded": cv(running_median(truth, WIDTH_FRAMES)[filled]),
            "factors": sorted({round(f, 3) for f in series["factor"]}),
            "factors_nohold": sorted({round(f, 3) for f in series["factor_nohold"]})}


def scenario_switches(name: str) -> dict[str, Any]:
    """Frames (after the window filled) where the applied factor switched, with and without the hold."""
    from wirewatch.simulate.producer import FrameMaker
    from wirewatch.simulate.scenario import resolve_scenario

    scenario = resolve_scenario(name)
    maker = FrameMaker(scenario)
    images = []
    for i in range(scenario.frames):
        img = maker.image(i).astype(np.float32)
        images.append((img - img.min()) / max(1e-6, float(img.max() - img.min())))
    series = steady_series(images)

    def changes(values: list[float]) -> list[tuple[int, float]]:
        return [(i, round(values[i], 3)) for i in range(SCALE_WINDOW, len(values))
                if abs(values[i] - values[i - 1]) > 1e-9]

    return {"scenario": name, "frames": scenario.frames, "sample_changes": [c.frame for c in scenario.changes],
            "instrument_changes": [c.frame for c in scenario.instrument_changes],
            "factor_at_window": round(series["factor"][SCALE_WINDOW - 1], 3),
            "switches": changes(series["factor"]), "switches_nohold": changes(series["factor_nohold"])}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| set | series | mean estimate (px) | CV raw estimate | CV drawn width | applied factors | "
             "CV applied factor (switches) | without hold | CV iq_wire_width_px | same median of drawn widths |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['series']} | {r['raw_mean_px']:.1f} | {100 * r['cv_raw']:.1f} % | "
                     f"{100 * r['cv_truth']:.1f} % | {', '.join(f'{f:g}' for f in r['factors'])} | "
                     f"{100 * r['cv_factor']:.1f} % ({r['switches']}) | "
                     f"{100 * r['cv_factor_nohold']:.1f} % ({r['switches_nohold']}) | "
                     f"{100 * r['cv_recorded']:.1f} % | {100 * r['cv_truth_recorded']:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", default=list(DEFAULT_SETS))
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--persistent", action="store_true", help="also one field watched (fresh noise, jitter)")
    parser.add_argument("--scenarios", nargs="+", default=None,
                        help="instead: where the applied factor switches on these simulator scenarios")
    args = parser.parse_args(argv)
    if args.scenarios:
        for name in args.scenarios:
            print(json.dumps(scenario_switches(name)), flush=True)
        return
    rows = []
    for persistent in (False, True) if args.persistent else (False,):
        for name in args.sets:
            row = measure_set(name, frames=args.frames, size=args.size, seed=args.seed, persistent=persistent)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(markdown(rows))


if __name__ == "__main__":
    main()
