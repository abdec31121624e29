"""The evaluation panel: fixed sets of fresh synthetic frames spanning contrasts, magnifications, noise and
backgrounds, each scored for mask and box AP and count error, with the watershed baseline beside the model.

A model chosen on one preset optimises frames users never send (issue 37); the panel is what models are
reported and shipped on (``wirewatch evaluate --panel``, ``python -m wirewatch.train.ship --panel``). Frames
are drawn in memory from seeds derived from ``PANEL_SEED`` (3700 + set index, then ``sample_seed``), which
no training or evaluation set used (docs/model.md lists those: 0-27, 1001-1008, 2501, 2701, 2901, 2902).
Model backends run with ``score_threshold`` 0.05 (``MODEL_OPTIONS``: AP needs the low-score tail, as in the model
card); counts take detections scoring at least 0.5, as users' particle tables do. AP here counts every
detection even above 100 per frame (pycocotools' precision table read at the largest
``maxDets``), as the model card's numbers do: the 0.5x sets hold 60-160 wires per frame.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch import coco
from wirewatch.errors import InputError
from wirewatch.segment.base import Segmenter
from wirewatch.synth import SynthConfig, generate, magnify, preset_config, sample_seed, with_overrides
from wirewatch.synth.dataset import sample_annotations

PANEL_SEED = 3700
DEFAULT_FRAMES = 20
SCORE_THRESHOLD = 0.5  # counts use detections at or above this score, as users' particle tables do
MAGNIFICATIONS = (0.5, 1.0, 2.0, 3.0)
MODEL_OPTIONS: dict[str, Any] = {"score_threshold": 0.05}  # a model backend's panel defaults (options override)

# Absorption contrast as an instrument gives it, beyond the training preset: tapered, bent wires, less
# blur, photon and read noise.
_ABSORPTION = {"wires.shape.taper": {"low": 0.01, "high": 0.3}, "wires.shape.bend": {"low": 0.005, "high": 0.06},
               "blur_sigma": 1.5, "noise.photons": 1000.0, "noise.gaussian_sigma": 2.0}


@dataclass(frozen=True)
class PanelSet:
    name: str
    description: str
    config: Callable[[int], SynthConfig]  # frame size -> generator config


def _preset(name: str) -> Callable[[int], SynthConfig]:
    return lambda size: preset_config(name, size)


def _derived(base: str, overrides: Mapping[str, Any], factor: float = 1.0) -> Callable[[int], SynthConfig]:
    def make(size: int) -> SynthConfig:
        cfg = with_overrides(preset_config(base, size), overrides, "panel set")
        return magnify(cfg, factor) if factor != 1.0 else cfg
    return make


def panel_sets() -> list[PanelSet]:
    """The panel, in its fixed order (the order fixes each set's seed: append new sets at the end)."""
    sets = [PanelSet(f"preset-{p}", f"the {p} preset", _preset(p)) for p in ("ptychography", "realistic", "stxm", "sem")]
    for f in MAGNIFICATIONS:
        sets.append(PanelSet(f"absorption-{f:g}x", f"absorption contrast, tapered / bent wires, noise; {f:g}x "
                                                   f"magnification (widths {5 * f:g}-{20 * f:g} px)",
                             _derived("ptychography", _ABSORPTION, f)))
    for f in MAGNIFICATIONS:
        sets.append(PanelSet(f"sem-{f:g}x", f"SEM-like contrast (grey substrate, brighter bodies, bright edges); "
                                            f"{f:g}x magnification", _derived("sem", {}, f)))
    sets += [
        PanelSet("tem-bright-field", "TEM bright field: dark wires on a bright field (Beer-Lambert), noise",
                 _derived("ptychography", {**_ABSORPTION, "contrast.mode": "bright_field",
                                           "background.gradient": 0.05})),
        PanelSet("heavy-noise", "default wires under heavy noise (100 photons at full scale, read noise 8 grey levels)",
                 _derived("ptychography", {"noise.photons": 100.0, "noise.gaussian_sigma": 8.0})),
        PanelSet("uneven-background", "default wires on a strong offset, gradient and bumps",
                 _derived("ptychography", {"background.offset": 0.1, "background.gradient": 0.25,
                                           "background.bumps": 0.12})),
        PanelSet("agglomerates", "most wires in 2-4 dense clusters",
                 _derived("ptychography", {"wires.agglomerates.count": {"min": 2, "max": 4},
                                           "wires.agglomerates.fraction": 0.7, "wires.agglomerates.radius": 35.0})),
        # the demo's last stage (alignment at 225): long, nearly parallel wires crossing at grazing angles
        PanelSet("aligned-dense", "many long wires aligned within ~20 degrees, crossing at grazing angles",
                 _derived("ptychography", {"wires.count": {"min": 60, "max": 100},
                                           "wires.orientation": {"mean_deg": 75.0, "kappa": 8.0},
                                           "wires.length": {"kind": "lognormal", "low": 35.0, "high": 210.0,
                                                            "median": 98.0, "sigma": 0.45}})),
    ]
    return sets


def select_sets(names: Sequence[str] | None) -> list[tuple[int, PanelSet]]:
    """(index, set) of the named sets (all when ``names`` is empty); an unknown name is an error."""
    indexed = list(enumerate(panel_sets()))
    if not names:
        return indexed
    by_name = {s.name: (i, s) for i, s in indexed}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"unknown panel set(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def set_frames(index: int, panel_set: PanelSet, count: int, size: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """COCO ground truth and float32 frames (0..1) of one set: frame ``i`` from seed
    ``sample_seed(PANEL_SEED + index, i)``."""
    cfg = panel_set.config(size)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    frames: list[np.ndarray] = []
    for i in range(count):
        sample = generate(cfg, sample_seed(PANEL_SEED + index, i))
        images.append({"id": i + 1, "file_name": f"{panel_set.name}/{i:04d}", "height": size, "width": size})
        for ann in sample_annotations(sample, i + 1, len(annotations) + 1):
            ann.pop("wire", None)
            annotations.append(ann)
        frames.append(sample.image.astype(np.float32) * np.float32(1.0 / 255.0))
    return coco.dataset(images, annotations), frames


def average_precision(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    """Box and mask AP (IoU 0.5:0.95) and AP50, every detection of a frame counted (maxDets raised to the
    most detections any frame has; pycocotools' summary would read -1 there)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results or not gt["annotations"]:
        return {"bbox.AP": 0.0, "bbox.AP50": 0.0, "segm.AP": 0.0, "segm.AP50": 0.0}
    per_image: dict[int, int] = {}
    for r in results:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        for iou_type in ("bbox", "segm"):
            ev = COCOeval(coco_gt, coco_gt.loadRes(coco.ranked_for(iou_type, results)), iouType=iou_type)
            ev.params.maxDets = [1, 10, max(100, *per_image.values())]
            ev.evaluate()
            ev.accumulate()
            precision = ev.eval["precision"][:, :, 0, 0, -1]  # IoU x recall, class 0, area all, most dets
            valid = precision[precision > -1]
            out[f"{iou_type}.AP"] = float(valid.mean()) if valid.size else 0.0
            p50 = precision[0][precision[0] > -1]
            out[f"{iou_type}.AP50"] = float(p50.mean()) if p50.size else 0.0
    return out


def segment_frames(segmenter: Segmenter, frames: Sequence[np.ndarray]) -> tuple[list[dict[str, Any]], list[int], float]:
    """COCO results (detector's boxes, masks ranked by mask score), per-frame counts at the score threshold,
    and seconds spent."""
    results: list[dict[str, Any]] = []
    counts: list[int] = []
    seconds = 0.0
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        det = segmenter.segment(frame)
        seconds += time.perf_counter() - t0
        for box, score, mask_score, mask in zip(det.boxes, det.scores, det.mask_confidence, det.masks, strict=True):
            if mask.any():
                x0, y0, x1, y1 = (float(v) for v in box)
                results.append({**coco.result(i + 1, mask, float(score), float(mask_score)),
                                "bbox": [x0, y0, x1 - x0, y1 - y0]})
        counts.append(int(np.count_nonzero(det.scores >= SCORE_THRESHOLD)))
    return results, counts, seconds


def count_error(pred: Sequence[int], truth: Sequence[int]) -> float:
    """Mean over frames of |predicted - true| / true particle count (frames without wires skipped)."""
    errs = [abs(p - t) / t for p, t in zip(pred, truth, strict=True) if t > 0]
    return float(np.mean(errs)) if errs else math.nan


def run_panel(segmenters: Mapping[str, Segmenter], *, frames: int = DEFAULT_FRAMES, size: int = 512,
              sets: Sequence[str] | None = None, progress: Callable[[str], None] | None = None,
              on_set: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every segmenter on every chosen set -> {"sets": [...], "mean": {...}, ...} (JSON-ready). ``on_set`` gets
    the report so far after each set (a long run leaves its finished sets behind)."""
    if frames < 1:
        raise InputError(f"the panel needs at least 1 frame per set, got {frames}")
    if not 64 <= size <= 4096:
        raise InputError(f"panel frame size must be within 64..4096 px, got {size}")
    rows: list[dict[str, Any]] = []
    for index, ps in select_sets(sets):
        gt, images = set_frames(index, ps, frames, size)
        truth = [0] * len(images)
        for ann in gt["annotations"]:
            truth[ann["image_id"] - 1] += 1
        row: dict[str, Any] = {"set": ps.name, "description": ps.description, "frames": len(images),
                               "wires_per_frame": round(float(np.mean(truth)), 1), "scores": {}}
        for label, segmenter in segmenters.items():
            results, counts, seconds = segment_frames(segmenter, images)
            ap = average_precision(gt, results)
            row["scores"][label] = {"segm.AP": round(ap["segm.AP"], 4), "bbox.AP": round(ap["bbox.AP"], 4),
                                    "segm.AP50": round(ap["segm.AP50"], 4),
                                    "count_error": round(count_error(counts, truth), 4),
                                    "seconds_per_frame": round(seconds / max(1, len(images)), 3)}
        rows.append(row)
        if progress is not None:
            progress(ps.name + ": " + ", ".join(f"{k} {v['segm.AP']:.3f}" for k, v in row["scores"].items()))
        if on_set is not None:
            on_set(_report(segmenters, rows, frames, size))
    return _report(segmenters, rows, frames, size)


def _report(segmenters: Mapping[str, Segmenter], rows: list[dict[str, Any]], frames: int, size: int) -> dict[str, Any]:
    mean = {label: {key: round(float(np.nanmean([r["scores"][label][key] for r in rows])), 4)
                    for key in ("segm.AP", "bbox.AP", "segm.AP50", "count_error", "seconds_per_frame")}
            for label in segmenters}
    return {"panel_seed": PANEL_SEED, "frames_per_set": frames, "size": size, "score_threshold": SCORE_THRESHOLD,
            "segmenters": list(segmenters), "sets": rows, "mean": mean}


def markdown_table(report: Mapping[str, Any]) -> str:
    """One row per set (and the mean): mask AP / box AP / count error for each segmenter."""
    labels = list(report["segmenters"])
    head = "| set | wires / frame | " + " | ".join(f"{lab}: mask AP / box AP / count err" for lab in labels) + " |"
    lines = [head, "| --- | --- | " + " | ".join("---" for _ in labels) + " |"]

    def cells(scores: Mapping[str, Any]) -> str:
        return " | ".join(f"{scores[lab]['segm.AP']:.3f} / {scores[lab]['bbox.AP']:.3f} / "
                          f"{scores[lab]['count_error']:.0%}" for lab in labels)

    for row in report["sets"]:
        lines.append(f"| {row['set']} | {row['wires_per_frame']:g} | {cells(row['scores'])} |")
    lines.append(f"| **mean of {len(report['sets'])} sets** | | {cells(report['mean'])} |")
    return "\n".join(lines) + "\n"
