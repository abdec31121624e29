"""``evaluate``: COCO AP (pycocotools), segmentation accuracy, count error and statistics agreement."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch import coco
from wirewatch.evaluate.cocofile import check_ground_truth, check_results, masks_by_image, resolve_image
from wirewatch.evaluate.metrics import (
    AGREEMENT_DESCRIPTORS,
    PixelCounts,
    distribution_agreement,
    pixel_counts,
)
from wirewatch.stats import PARTICLE_COLUMNS, particle_descriptors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageResult:
    """One image's share of the evaluation."""

    image_id: Any
    file_name: str
    count_pred: int
    count_gt: int
    pixels: PixelCounts


@dataclass(frozen=True)
class Evaluation:
    """All numbers of one evaluation; ``metrics`` holds the stable JSON keys."""

    metrics: dict[str, float]
    images: list[ImageResult]
    pred_particles: dict[str, np.ndarray] = field(default_factory=dict)
    gt_particles: dict[str, np.ndarray] = field(default_factory=dict)


def foreground(stack: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Union of an (N, H, W) mask stack (all False when N = 0)."""
    return np.asarray(stack.any(axis=0)) if len(stack) else np.zeros(shape, bool)


def _concat(tables: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not tables:
        return {c: np.zeros(0) for c in PARTICLE_COLUMNS}
    return {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}


def evaluate(gt: dict[str, Any], results: list[dict[str, Any]], *, score_threshold: float = 0.5,
             image_roots: Sequence[Path] = (), plots_dir: str | Path | None = None, max_plot_images: int = 6,
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Evaluate COCO ``results`` against COCO ground truth ``gt``.

    AP numbers use every detection (pycocotools ranks them by score). Segmentation accuracy,
    counts and the particle statistics use detections with ``score >= score_threshold``, as a
    user of the masks would. Plots (comparison maps, overlays, distributions) go to
    ``plots_dir`` when given; frames are looked up under ``image_roots`` (drawn without the
    frame when not found).
    """
    gt = check_ground_truth(gt)
    results = check_results(results, gt)
    if not 0.0 <= score_threshold <= 1.0:
        from wirewatch.errors import InputError

        raise InputError(f"score threshold must be between 0 and 1, got {score_threshold}")
    metrics: dict[str, float] = dict(coco.coco_metrics(gt, results))

    images = gt["images"]
    kept = [r for r in results if float(r.get("score", 1.0)) >= score_threshold]
    gt_masks = masks_by_image(gt["annotations"], images)
    per_image: list[ImageResult] = []
    pred_tables: list[dict[str, np.ndarray]] = []
    gt_tables: list[dict[str, np.ndarray]] = []
    total = PixelCounts(0, 0, 0)
    empty_pred = empty_gt = 0
    plotted = 0
    pred_by_image: dict[Any, list[dict[str, Any]]] = {}
    for r in kept:
        pred_by_image.setdefault(r["image_id"], []).append(r)
    for n, img in enumerate(images):
        pred_stack = masks_by_image(pred_by_image.get(img["id"], []), [img])[img["id"]]
        gt_stack = gt_masks[img["id"]]
        p_table = particle_descriptors(pred_stack)
        g_table = particle_descriptors(gt_stack)
        empty_pred += p_table.empty_masks_skipped
        empty_gt += g_table.empty_masks_skipped
        pred_tables.append(p_table.columns)
        gt_tables.append(g_table.columns)
        shape = (int(img["height"]), int(img["width"]))
        pred_fg = foreground(pred_stack, shape)
        gt_fg = foreground(gt_stack, shape)
        counts = pixel_counts(pred_fg, gt_fg)
        total = total + counts
        per_image.append(ImageResult(image_id=img["id"], file_name=str(img.get("file_name", "")),
                                     count_pred=len(p_table), count_gt=len(g_table), pixels=counts))
        if plots_dir is not None and plotted < max_plot_images:
            _plot_image(Path(plots_dir), img, pred_stack, pred_fg, gt_fg, image_roots)
            plotted += 1
        if progress is not None:
            progress(n + 1, len(images))

    pred_all = _concat(pred_tables)
    gt_all = _concat(gt_tables)
    count_pred = sum(r.count_pred for r in per_image)
    count_gt = sum(r.count_gt for r in per_image)
    metrics.update({
        "seg_accuracy": total.accuracy,
        "seg_tp": float(total.tp),
        "seg_fp": float(total.fp),
        "seg_fn": float(total.fn),
        "count_pred": float(count_pred),
        "count_gt": float(count_gt),
        "count_error": float(count_pred - count_gt),
        "count_relative_error": (count_pred - count_gt) / count_gt if count_gt else math.nan,
        "images": float(len(images)),
        "detections": float(len(results)),
        "score_threshold": float(score_threshold),
        "empty_masks_skipped": float(empty_pred + empty_gt),
    })
    if empty_pred or empty_gt:
        log.warning("skipped zero-pixel masks: %d predicted, %d ground truth", empty_pred, empty_gt)
    metrics.update(distribution_agreement(pred_all, gt_all, AGREEMENT_DESCRIPTORS))
    if plots_dir is not None:
        from wirewatch.plots import plot_distributions

        plot_distributions({"prediction": pred_all, "ground truth": gt_all}, Path(plots_dir) / "distributions.png",
                           title=f"{count_pred} predicted vs {count_gt} ground-truth particles")
    return Evaluation(metrics=metrics, images=per_image, pred_particles=pred_all, gt_particles=gt_all)


def _plot_image(out: Path, img: dict[str, Any], pred_stack: np.ndarray, pred_fg: np.ndarray, gt_fg: np.ndarray,
                roots: Sequence[Path]) -> None:
    from wirewatch.errors import InputError
    from wirewatch.plots import plot_comparison, plot_overlay
    from wirewatch.segment.io import read_image

    frame = None
    name = str(img.get("file_name", ""))
    if name and roots:
        try:
            frame = read_image(resolve_image(name, roots))
            if frame.shape != pred_fg.shape:
                frame = None
        except InputError as exc:
            log.warning("plots without the frame: %s", exc)
    stem = f"image_{img['id']}"
    plot_comparison(pred_fg, gt_fg, out / f"{stem}_compare.png", image=frame, title=name or stem)
    plot_overlay(frame if frame is not None else gt_fg.astype(np.float32), pred_stack, out / f"{stem}_overlay.png",
                 title=f"{name or stem}: {len(pred_stack)} predicted")


def segment_ground_truth_images(gt: dict[str, Any], segmenter: Any, image_roots: Sequence[Path],
                                progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Run ``segmenter`` on every image of ``gt`` (``file_name`` looked up under ``image_roots``) -> COCO results."""
    from wirewatch.errors import InputError
    from wirewatch.segment.io import read_image

    gt = check_ground_truth(gt)
    results: list[dict[str, Any]] = []
    for n, img in enumerate(gt["images"]):
        if "file_name" not in img:
            raise InputError(f"ground-truth image {img['id']} has no file_name to segment")
        image = read_image(resolve_image(str(img["file_name"]), image_roots))
        if image.shape != (int(img["height"]), int(img["width"])):
            raise InputError(f"image {img['file_name']}: size {image.shape[1]}x{image.shape[0]} does not match the "
                             f"ground truth's {img['width']}x{img['height']}")
        det = segmenter.segment(image)
        results.extend(coco.result(img["id"], m, float(s), float(ms))
                       for m, s, ms in zip(det.masks, det.scores, det.mask_confidence, strict=True))
        if progress is not None:
            progress(n + 1, len(gt["images"]))
    return results
