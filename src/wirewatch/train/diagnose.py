"""Where a checkpoint's mask AP goes: the detector, its mask head, or the mask grid.

    python -m wirewatch.train.diagnose --checkpoint RUN/final.pt --data EVAL_DIR --images 30

Scores four sets of detections on the same images with pycocotools (``wirewatch.train.validate``):

- ``model``: the model as it runs (its boxes, scores and masks);
- ``gt_boxes``: its mask head applied to the ground-truth boxes (score 1): the mask head's own quality;
- ``grid``: the ground-truth masks encoded as the mask head's training targets on the model's M x M grid
  and pasted back: the ceiling the grid size sets;
- ``grid_2x``: the same on a grid twice as fine.

If ``gt_boxes`` is far below ``grid``, a better mask head is what raises mask AP, not a finer grid.
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
def mask_probs_on_boxes(model: nn.Module, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The model's (N, M, M) mask probabilities (class 1) for the given frame-pixel boxes."""
    m: Any = model
    model.eval()
    x = grey_to_model_input(torch.from_numpy(np.ascontiguousarray(image, np.float32)))
    images, _ = m.transform([x])
    features = m.backbone(images.tensors)
    heads = m.roi_heads
    pooled = heads.mask_roi_pool(features, [torch.from_numpy(boxes)], images.image_sizes)
    logits = heads.mask_predictor(heads.mask_head(pooled))
    return logits[:, 1].sigmoid().numpy()


def encode_on_grid(masks: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """True masks as the mask head's training targets: torchvision's own ``project_masks_on_boxes``."""
    return project_masks_on_boxes(torch.from_numpy(masks), torch.from_numpy(boxes),
                                  torch.arange(len(boxes)), side).numpy()


def diagnose(model: nn.Module, folder: CocoFolder, images: int) -> dict[str, dict[str, float]]:
    """pycocotools metrics of each row of ``ROWS`` on the first ``images`` images of ``folder``."""
    indices = list(range(min(images, len(folder))))
    chosen = [folder.images[i] for i in indices]
    ids = {int(im["id"]) for im in chosen}
    gt = coco.dataset(chosen, [a for a in folder.coco["annotations"] if a["image_id"] in ids])
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in ROWS}
    side = 0
    for i in indices:
        sample = folder.load(i)
        image_id = int(folder.images[i]["id"])
        boxes, scores, masks = predict(model, sample.image)
        results["model"] += [detection_result(image_id, b, mk, float(s))
                             for b, s, mk in zip(boxes, scores, masks, strict=True) if mk.any()]
        present = sample.masks.any(axis=(1, 2))
        if not present.any():
            continue
        true_masks, gt_boxes = sample.masks[present], sample.boxes[present].astype(np.float32)
        probs = mask_probs_on_boxes(model, sample.image, gt_boxes)
        side = probs.shape[-1]
        shape = sample.image.shape[:2]
        for row, grid in (("gt_boxes", probs), ("grid", encode_on_grid(true_masks, gt_boxes, side)),
                          ("grid_2x", encode_on_grid(true_masks, gt_boxes, 2 * side))):
            pasted = paste_masks(grid, gt_boxes, shape)
            results[row] += [detection_result(image_id, b, mk, 1.0) for b, mk in zip(gt_boxes, pasted, strict=True)
                             if mk.any()]
    out = {row: coco_ap(gt, r) for row, r in results.items()}
    for row in ROWS:
        out[row]["mask_grid"] = float(side * (2 if row == "grid_2x" else 1))
    return out


def main(argv: list[str] | None = None) -> None:
    from wirewatch.export.onnx import model_from_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="a wirewatch synth folder (e.g. an eval set)")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    model, _ = model_from_checkpoint(args.checkpoint)
    model.roi_heads.score_thresh = 0.05  # type: ignore[union-attr]  # AP needs the low-score tail
    metrics = diagnose(model, CocoFolder(args.data), args.images)
    for row, m in metrics.items():
        print(f"{row:9s} grid {int(m['mask_grid']):3d}  box AP {m['bbox.AP']:.3f}  mask AP {m['segm.AP']:.3f}  "
              f"AP50 {m['segm.AP50']:.3f}  AP75 {m['segm.AP75']:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
