"""COCO box/mask AP of a torch model on a synthesiser folder (pycocotools via ``wirewatch.coco``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from wirewatch import coco
from wirewatch.segment.maskness import mask_scores
from wirewatch.segment.paste import paste_masks
from wirewatch.train.data import CocoFolder
from wirewatch.train.model import grey_to_model_input


@torch.no_grad()
def predict(model: nn.Module, image: np.ndarray, mask_threshold: float = 0.5
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full-frame inference at native scale: boxes (N, 4), scores (N,), bool masks (N, H, W) and mask
    scores (N,): score x maskness, as the runtime backends give them (``wirewatch.segment.maskness``).

    The M x M mask probabilities are pasted by ``wirewatch.segment.paste`` (the runtime's paste, the exact
    inverse of the training targets), not torchvision's, so validation scores what the daemon will see.
    """
    m: Any = model
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = grey_to_model_input(torch.from_numpy(np.ascontiguousarray(image, np.float32)).to(device))
        images, _ = m.transform([x])
        features = m.backbone(images.tensors)
        proposals, _ = m.rpn(images, features)
        detections, _ = m.roi_heads(features, proposals, images.image_sizes)
    finally:
        model.train(was_training)
    d = {k: v.cpu() for k, v in detections[0].items()}
    # NativeScaleTransform never resizes, so boxes are already in frame pixels.
    boxes = d["boxes"].numpy()
    probs, scores = d["masks"][:, 0].numpy(), d["scores"].numpy()
    masks = paste_masks(probs, boxes, image.shape[:2], mask_threshold)
    return boxes, scores, masks, mask_scores(scores, probs, mask_threshold)


def evaluate_folder(model: nn.Module, folder: CocoFolder, indices: Sequence[int] | None = None,
                    score_threshold: float = 0.05) -> dict[str, float]:
    """pycocotools metrics (``bbox.AP``, ``segm.AP``, ...) on the chosen images of ``folder``."""
    indices = list(range(len(folder))) if indices is None else list(indices)
    images = [folder.images[i] for i in indices]
    gt = coco.subset(folder.coco, images)
    results: list[dict[str, Any]] = []
    for i in indices:
        sample = folder.load(i)
        boxes, scores, masks, mask_conf = predict(model, sample.image)
        image_id = int(folder.images[i]["id"])
        for box, score, mask, mask_score in zip(boxes, scores, masks, mask_conf, strict=True):
            if score >= score_threshold and mask.any():
                results.append(detection_result(image_id, box, mask, float(score), float(mask_score)))
    return coco_ap(gt, results)


def detection_result(image_id: int, box: np.ndarray, mask: np.ndarray, score: float,
                     mask_score: float | None = None) -> dict[str, Any]:
    """COCO result with the detector's own box (box AP, ranked by ``score``) and its mask (mask AP,
    ranked by ``mask_score`` when given, as Mask Scoring R-CNN ranks masks)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return {**coco.result(image_id, mask, score, mask_score), "bbox": [x0, y0, x1 - x0, y1 - y0]}


def coco_ap(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    """``coco.coco_metrics`` keys, with AP at area 'all' taken at the same max-detections as the rest.

    pycocotools' ``summarize()`` computes the headline AP at maxDets=100 only, so when
    ``coco_metrics`` raises maxDets above 100 (frames with >100 detections) it reports AP = -1.
    Here every number uses the last maxDets entry.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {f"{t}.{m}": 0.0 for t in ("bbox", "segm") for m in coco.METRIC_NAMES}
    out: dict[str, float] = {}
    per_image: dict[int, int] = {}
    for r in results:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    max_dets = max(100, *per_image.values())
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**gt, "categories": gt.get("categories") or [coco.CATEGORY]}
        coco_gt.createIndex()
        for iou_type in ("bbox", "segm"):
            coco_dt = coco_gt.loadRes(coco.ranked_for(iou_type, results))
            ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
            ev.params.maxDets = [1, 10, max_dets]
            ev.evaluate()
            ev.accumulate()
            precision = ev.eval["precision"][:, :, :, :, -1]  # T x R x K x A at the largest maxDets
            areas = {"": 0, "s": 1, "m": 2, "l": 3}
            for name in coco.METRIC_NAMES:
                p = precision
                if name == "AP50":
                    p = p[[0]]
                elif name == "AP75":
                    p = p[[5]]
                p = p[..., areas.get(name[2:], 0)]
                valid = p[p > -1]
                out[f"{iou_type}.{name}"] = float(valid.mean()) if valid.size else -1.0
    return out
