"""COCO instance-segmentation helpers shared by synth, segment, evaluate and train.

Masks are stored as compressed RLE (pycocotools) so any COCO tool reads them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

CATEGORY = {"id": 1, "name": "nanowire", "supercategory": "particle"}
MASK_SCORE = "mask_score"  # optional key of a results entry: the score that ranks its mask (mask AP)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Binary (H, W) mask -> COCO compressed RLE with a JSON-safe ``counts`` string."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(segmentation: dict[str, Any] | list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO segmentation (RLE, uncompressed RLE or polygons) -> bool (H, W) mask."""
    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO bbox [x, y, w, h] of a binary mask (pixel-edge convention, as pycocotools)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = float(xs.min()), float(ys.min())
    return [x0, y0, float(xs.max()) + 1.0 - x0, float(ys.max()) + 1.0 - y0]


def boxes_of(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks -> (N, 4) float32 x0, y0, x1, y1 (exclusive ends, as ``mask_bbox``); zeros for an empty mask."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        if len(xs):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def annotation(ann_id: int, image_id: int, mask: np.ndarray, **extra: Any) -> dict[str, Any]:
    """A ground-truth annotation for one instance mask."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY["id"],
        "segmentation": encode_mask(mask),
        "area": int(mask.sum()),
        "bbox": mask_bbox(mask),
        "iscrowd": 0,
        **extra,
    }


def result(image_id: int, mask: np.ndarray, score: float, mask_score: float | None = None) -> dict[str, Any]:
    """A COCO results entry (detection) for one predicted mask: ``score`` the detector's confidence,
    ``mask_score`` (optional extra key) the confidence in the mask, which ranks it for mask AP."""
    entry = {
        "image_id": image_id,
        "category_id": CATEGORY["id"],
        "segmentation": encode_mask(mask),
        "bbox": mask_bbox(mask),
        "score": float(score),
    }
    if mask_score is not None:
        entry[MASK_SCORE] = float(mask_score)
    return entry


def ranked_for(iou_type: str, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``results`` scored for ``iou_type``: masks ("segm") by their ``mask_score`` where an entry
    has one (as Mask Scoring R-CNN ranks masks), boxes by the detector's ``score``."""
    if iou_type != "segm":
        return [dict(r) for r in results]
    return [{**r, "score": r.get(MASK_SCORE, r["score"])} for r in results]


def dataset(images: Sequence[dict[str, Any]], annotations: Iterable[dict[str, Any]],
            info: dict[str, Any] | None = None) -> dict[str, Any]:
    """A COCO instance-segmentation dataset dict with the one ``nanowire`` category."""
    return {
        "info": info or {},
        "images": list(images),
        "annotations": list(annotations),
        "categories": [CATEGORY],
    }


def subset(source: dict[str, Any], images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The dataset of ``images`` (entries of ``source``) with only their annotations from ``source``."""
    ids = {int(im["id"]) for im in images}
    return dataset(images, [a for a in source["annotations"] if a["image_id"] in ids])


METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_metrics(gt: dict[str, Any], results: list[dict[str, Any]],
                 iou_types: Sequence[str] = ("bbox", "segm")) -> dict[str, float]:
    """pycocotools' own COCOeval numbers, under stable keys ``bbox.AP``, ``segm.AP50``...

    Empty results give 0.0 for every metric instead of pycocotools' exception.
    Values pycocotools reports as -1 (no ground truth in that size range) are kept as -1.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out: dict[str, float] = {}
    if not results:
        return {f"{t}.{m}": 0.0 for t in iou_types for m in METRIC_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**gt, "categories": gt.get("categories") or [CATEGORY]}
        coco_gt.createIndex()
        for iou_type in iou_types:
            coco_dt = coco_gt.loadRes(ranked_for(iou_type, results))
            ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
            # pycocotools' standard maxDets (1, 10, 100): summarize() reads AP at 100 only, so raising it
            # would turn AP into -1; the top 100 detections per image are scored, as in COCO.
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            for i, name in enumerate(METRIC_NAMES):
                out[f"{iou_type}.{name}"] = float(ev.stats[i])
    return out

