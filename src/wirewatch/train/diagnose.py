"""Where a checkpoint's mask AP goes: the detector, its mask head, or the mask grid.

    python -m wirewatch.train.diagnose --checkpoint RUN/final.pt --data EVAL_DIR --images 30

Scores four sets of detections on the same images with pycocotools (``wirewatch.train.validate``):

- ``model``: the model as it runs (its boxes, scores and masks);
- ``gt_boxes``: its mask head applied to the ground-truth boxes (score 1): the mask head's own quality;
- ``grid``: the ground-truth masks encoded as the mask head's training targets on the model's M x M grid
  and pasted back: the ceiling the grid size sets;
- ``grid_2x``: the same on a grid twice as fine.

If ``gt_boxes`` is far below ``grid``, a better mask head is what raises mask AP, not a finer grid.

``--expand F`` adds ``model_xF`` and ``gt_boxes_xF``: the mask head reads (and its masks are pasted into)
boxes grown F times about their centres, the detections' boxes and scores unchanged: whether the head
segments better with context around a wire's tips (it learnt on proposals, rarely as tight as a detection).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.roi_heads import project_masks_on_boxes

from wirewatch import coco
from wirewatch.segment.paste import paste_masks
from wirewatch.train.data import CocoFolder
from wirewatch.train.model import grey_to_model_input
from wirewatch.train.validate import coco_ap, detection_result, predict

ROWS = ("model", "gt_boxes", "grid", "grid_2x")


@torch.no_grad()
def frame_features(model: nn.Module, image: np.ndarray) -> tuple[Any, list[tuple[int, int]]]:
    """The backbone's feature maps of one frame and the image size the mask pooling needs."""
    m: Any = model
    model.eval()
    x = grey_to_model_input(torch.from_numpy(np.ascontiguousarray(image, np.float32)))
    images, _ = m.transform([x])
    return m.backbone(images.tensors), images.image_sizes


@torch.no_grad()
def mask_probs_on_boxes(model: nn.Module, features: tuple[Any, list[tuple[int, int]]],
                        boxes: np.ndarray) -> np.ndarray:
    """The model's (N, M, M) mask probabilities (class 1) for the given frame-pixel boxes."""
    heads: Any = model.roi_heads
    maps, sizes = features
    pooled = heads.mask_roi_pool(maps, [torch.from_numpy(np.ascontiguousarray(boxes, np.float32))], sizes)
    logits = heads.mask_predictor(heads.mask_head(pooled))
    return logits[:, 1].sigmoid().numpy()


def expand_boxes(boxes: np.ndarray, factor: float) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 boxes grown ``factor`` times about their centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * (factor / 2)
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def encode_on_grid(masks: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """True masks as the mask head's training targets: torchvision's own ``project_masks_on_boxes``."""
    return project_masks_on_boxes(torch.from_numpy(masks), torch.from_numpy(boxes),
                                  torch.arange(len(boxes)), side).numpy()


def diagnose(model: nn.Module, folder: CocoFolder, images: int,
             expand: tuple[float, ...] = ()) -> dict[str, dict[str, float]]:
    """pycocotools metrics of each row of ``ROWS`` (and the ``--expand`` rows) on the first ``images``
    images of ``folder``."""
    indices = list(range(min(images, len(folder))))
    chosen = [folder.images[i] for i in indices]
    gt = coco.subset(folder.coco, chosen)
    rows = ROWS + tuple(f"{kind}_x{f:g}" for f in expand for kind in ("model", "gt_boxes"))
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    side = 0
    for i in indices:
        sample = folder.load(i)
        image_id = int(folder.images[i]["id"])
        boxes, scores, masks, _ = predict(model, sample.image)
        results["model"] += [detection_result(image_id, b, mk, float(s))
                             for b, s, mk in zip(boxes, scores, masks, strict=True) if mk.any()]
        present = sample.masks.any(axis=(1, 2))
        features = frame_features(model, sample.image) if present.any() or expand else None
        shape = sample.image.shape[:2]
        if features is not None and len(boxes):
            for f in expand:
                grown = expand_boxes(np.asarray(boxes, np.float32), f)
                pasted = paste_masks(mask_probs_on_boxes(model, features, grown), grown, shape)
                results[f"model_x{f:g}"] += [detection_result(image_id, b, mk, float(s))
                                             for b, s, mk in zip(boxes, scores, pasted, strict=True) if mk.any()]
        if features is None or not present.any():
            continue
        true_masks, gt_boxes = sample.masks[present], sample.boxes[present].astype(np.float32)
        probs = mask_probs_on_boxes(model, features, gt_boxes)
        side = probs.shape[-1]
        for f in expand:
            grown = expand_boxes(gt_boxes, f)
            pasted = paste_masks(mask_probs_on_boxes(model, features, grown), grown, shape)
            results[f"gt_boxes_x{f:g}"] += [detection_result(image_id, b, mk, 1.0)
                                            for b, mk in zip(gt_boxes, pasted, strict=True) if mk.any()]
        for row, grid in (("gt_boxes", probs), ("grid", encode_on_grid(true_masks, gt_boxes, side)),
                          ("grid_2x", encode_on_grid(true_masks, gt_boxes, 2 * side))):
            pasted = paste_masks(grid, gt_boxes, shape)
            results[row] += [detection_result(image_id, b, mk, 1.0) for b, mk in zip(gt_boxes, pasted, strict=True)
                             if mk.any()]
    out = {row: coco_ap(gt, r) for row, r in results.items()}
    for row in rows:
        out[row]["mask_grid"] = float(side * (2 if row == "grid_2x" else 1))
    return out


def main(argv: list[str] | None = None) -> None:
    from wirewatch.export.onnx import model_from_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="a wirewatch synth folder (e.g. an eval set)")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--expand", type=float, nargs="*", default=[],
                        help="also score the mask head on boxes grown by these factors (e.g. 1.1 1.2)")
    args = parser.parse_args(argv)
    model, _ = model_from_checkpoint(args.checkpoint)
    model.roi_heads.score_thresh = 0.05  # type: ignore[union-attr]  # AP needs the low-score tail
    metrics = diagnose(model, CocoFolder(args.data), args.images, tuple(args.expand))
    for row, m in metrics.items():
        print(f"{row:13s} grid {int(m['mask_grid']):3d}  box AP {m['bbox.AP']:.3f}  mask AP {m['segm.AP']:.3f}  "
              f"AP50 {m['segm.AP50']:.3f}  AP75 {m['segm.AP75']:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
