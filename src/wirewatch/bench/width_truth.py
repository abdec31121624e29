"""Measured wire widths against the synthesiser's truth, frame by frame and wire by wire (issue 37 part 4).

``python -m wirewatch.bench.width_truth --scenario demo`` segments a simulator scenario's frames in order
as the daemon does (the shipped config: its segmenter behind ``FitSegmenter`` with ``scale: auto`` over a
9-frame window, the same preprocessing); ``--preset stxm --frames 24 --seed 991000`` fresh frames of a
synthesiser preset instead. Each frame's model masks and true masks are measured alike, with ``width_px``
(area / length) and with the rule before issue 37 part 4 (the minimum-area rectangle's short side plus its
sampling allowance), and it prints:

- per frame group (``--group`` frames, e.g. a scenario's 75-frame segments): the mean |error| and bias of
  the frame's ``width_px_mean`` against the truth's, under either rule, and the particle count's mean
  relative error;
- per model mask, by what it covers of the true wires (``single``: IoU >= 0.5 with one wire and >= 30 % of
  no other; ``merged``: >= 30 % of two or more wires; ``partial``: the rest), the single ones split by
  whether their wire crosses another in the truth, its width error against that wire under either rule;
- the true masks' frame mean against the generator's drawn widths under either rule.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from wirewatch.stats.descriptors import particle_descriptors, sampling_allowance

KINDS = ("single isolated", "single crossing", "merged", "partial")


def rectangle_width(masks: np.ndarray, columns: dict[str, np.ndarray]) -> np.ndarray:
    """The width rule before issue 37 part 4: the minimum-area rectangle's short side plus its allowance."""
    out = []
    for mask, angle in zip(masks[columns["mask_index"]], columns["orientation_deg"], strict=True):
        ys, xs = np.nonzero(mask)
        _, (a, b), _ = cv2.minAreaRect(np.column_stack((xs, ys)).astype(np.float32))
        out.append(min(a, b) + sampling_allowance(np.array([angle]), np.array([max(a, b)]), np.array([min(a, b)]))[1][0])
    return np.array(out)


def _daemon_segmenter() -> tuple[Any, Any]:
    from wirewatch.config.daemon import load_daemon_config, shipped_config_path
    from wirewatch.daemon.build import build_segmenter
    from wirewatch.segment.fit import FitSegmenter
    from wirewatch.segment.scale import split_scale_options

    config = load_daemon_config(shipped_config_path())
    segmenter, backend, _ = build_segmenter(config)
    pp = config.preprocess
    runtime, _ = split_scale_options(backend, config.segment.options, default_window=9)  # as build_pipeline
    fitted = FitSegmenter(segmenter, max_side=pp.max_side, mode=pp.fit, tile_size=pp.tile_size,
                          tile_overlap=pp.tile_overlap, merge_overlap=pp.merge_overlap,
                          max_detections=config.segment.max_detections, scale=runtime.scale,
                          scale_window=runtime.scale_window, pixel_size_nm=config.measure.pixel_size_nm,
                          polarity=runtime.polarity)
    return fitted, pp


def frames(scenario: str | None, preset: str | None, count: int, seed: int) -> Iterator[tuple[int, np.ndarray, Any]]:
    """(frame number, prepared image's model masks, the synth sample) for each frame, in order."""
    from wirewatch.preprocess.normalise import prepare
    from wirewatch.types import Frame

    fitted, pp = _daemon_segmenter()
    if scenario is not None:
        from wirewatch.simulate.producer import FrameMaker, reserve_nodata
        from wirewatch.simulate.scenario import resolve_scenario

        sc = resolve_scenario(scenario)
        maker = FrameMaker(sc)
        for i in range(min(count, sc.frames) if count else sc.frames):
            sample = maker.sample(i)
            raw = reserve_nodata(maker._pixels(sample.image, i))  # what the stream carries
            yield i, fitted.segment(prepare(Frame(frame_id=i, image=raw, time=0.0), pp).image).masks, sample
    else:
        from wirewatch.synth import generate
        from wirewatch.synth.config import preset_config

        config = preset_config(str(preset))
        for i in range(count):
            sample = generate(config, seed=seed + i)
            yield i, fitted.segment(prepare(Frame(frame_id=i, image=sample.image, time=0.0), pp).image).masks, sample


def compare(pred: np.ndarray, true: np.ndarray) -> tuple[dict[str, float], list[tuple[str, float, float]]]:
    """Frame figures (means under both rules, counts) and, per model mask, (kind, error now, error before)."""
    pred = pred[pred.any(axis=(1, 2))]
    pc, tc = particle_descriptors(pred).columns, particle_descriptors(true).columns
    p_rect, t_rect = rectangle_width(pred, pc), rectangle_width(true, tc)
    frame = {"count": len(pred), "true_count": len(true), "width": np.mean(pc["width_px"]) if len(pred) else np.nan,
             "true_width": np.mean(tc["width_px"]), "rect": np.mean(p_rect) if len(pred) else np.nan,
             "true_rect": np.mean(t_rect)}
    if not len(pred):
        return frame, []
    inter = np.einsum("phw,thw->pt", pred.astype(np.uint16), true.astype(np.uint16), dtype=np.int64)
    p_area, t_area = pred.sum(axis=(1, 2)), true.sum(axis=(1, 2))
    crossing = [(true.sum(axis=0)[m] > 1).any() for m in true]
    wires = []
    for p in range(len(pred)):
        best = int(np.argmax(inter[p]))
        iou = inter[p, best] / (p_area[p] + t_area[best] - inter[p, best])
        if (inter[p] / t_area >= 0.3).sum() >= 2:
            kind = "merged"
        elif iou >= 0.5:
            kind = "single crossing" if crossing[best] else "single isolated"
        else:
            kind = "partial"
        wires.append((kind, pc["width_px"][p] - tc["width_px"][best], p_rect[p] - t_rect[best]))
    return frame, wires


def _err(measured: np.ndarray, truth: np.ndarray) -> str:
    e = measured - truth
    e = e[np.isfinite(e)]
    return f"{np.mean(np.abs(e)):.2f} ({np.mean(e):+.2f})" if e.size else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", help="a simulator scenario (e.g. demo): its frames in order")
    source.add_argument("--preset", help="a synthesiser preset: fresh frames")
    parser.add_argument("--frames", type=int, default=0, help="frames (default: the scenario's; presets: 24)")
    parser.add_argument("--seed", type=int, default=991000, help="first seed of a preset's frames")
    parser.add_argument("--group", type=int, default=0, help="report frames in groups of this many (0: all)")
    args = parser.parse_args(argv)
    count = args.frames or (0 if args.scenario else 24)
    rows: list[dict[str, float]] = []
    wires: list[tuple[int, str, float, float]] = []
    drawn: list[float] = []
    for i, masks, sample in frames(args.scenario, args.preset, count, args.seed):
        frame, per_wire = compare(masks, sample.masks)
        rows.append({"frame": i, **frame})
        wires += [(i, *w) for w in per_wire]
        drawn.append(float(np.mean([w.width for w in sample.wires])))
    f = {k: np.array([r[k] for r in rows], np.float64) for k in rows[0]}
    group = args.group or len(rows)
    print(f"{args.scenario or args.preset}: {len(rows)} frames; frame width_px_mean, mean |error| (bias) px; "
          "count: mean |relative error|")
    print("| frames | count | width_px (area / length) | before (rectangle's short side) |")
    print("| --- | --- | --- | --- |")
    for lo in range(0, len(rows), group):
        s = slice(lo, lo + group)
        rel = np.abs(f["count"][s] - f["true_count"][s]) / np.maximum(f["true_count"][s], 1)
        print(f"| {int(f['frame'][s][0])}-{int(f['frame'][s][-1])} | {100 * rel.mean():.1f} % | "
              f"{_err(f['width'][s], f['true_width'][s])} | {_err(f['rect'][s], f['true_rect'][s])} |")
    print("per model mask against its wire: n, width_px error mean / median, before mean / median (px)")
    for kind in KINDS:
        e = np.array([(now, old) for _, k, now, old in wires if k == kind]).reshape(-1, 2)
        if len(e):
            print(f"  {kind:16s} {len(e):5d}  {e[:, 0].mean():+.2f} / {np.median(e[:, 0]):+.2f}   "
                  f"{e[:, 1].mean():+.2f} / {np.median(e[:, 1]):+.2f}")
    d = np.array(drawn)
    print(f"true masks against the drawn widths (frame means): width_px {np.mean(f['true_width'] - d):+.2f} px, "
          f"before {np.mean(f['true_rect'] - d):+.2f} px")


if __name__ == "__main__":  # pragma: no cover - benchmark entry point
    main()
