"""Loading and checking COCO ground truth / results files, and decoding their masks per image."""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch import coco
from wirewatch.errors import InputError

log = logging.getLogger(__name__)


def read_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file {p}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} file {p} is not valid JSON: {exc}") from None


def check_ground_truth(gt: Any, source: str = "ground truth") -> dict[str, Any]:
    """A COCO dataset dict with images (id, width, height) and annotations (id, image_id, segmentation)."""
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list):
        raise InputError(f"{source}: not a COCO dataset (needs an 'images' list)")
    anns = gt.get("annotations", [])
    if not isinstance(anns, list):
        raise InputError(f"{source}: 'annotations' must be a list")
    ids = set()
    for i, img in enumerate(gt["images"]):
        missing = [k for k in ("id", "width", "height") if not isinstance(img, dict) or k not in img]
        if missing:
            raise InputError(f"{source}: image entry {i} lacks {', '.join(missing)}")
        ids.add(img["id"])
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict) or "image_id" not in ann or "segmentation" not in ann:
            raise InputError(f"{source}: annotation {i} needs 'image_id' and 'segmentation'")
        if ann["image_id"] not in ids:
            raise InputError(f"{source}: annotation {ann.get('id', i)} refers to image id {ann['image_id']!r}, "
                             "which is not in its 'images' list")
    out = dict(gt)
    out["annotations"] = [{"iscrowd": 0, "category_id": coco.CATEGORY["id"], "id": i + 1, **a}
                          for i, a in enumerate(anns)]
    by_id = {im["id"]: im for im in gt["images"]}
    for a in out["annotations"]:
        if "area" not in a or "bbox" not in a:
            img = by_id[a["image_id"]]
            m = coco.decode_mask(a["segmentation"], img["height"], img["width"])
            a.setdefault("area", int(m.sum()))
            a.setdefault("bbox", coco.mask_bbox(m))
    out.setdefault("categories", [coco.CATEGORY])
    return out


def check_results(results: Any, gt: dict[str, Any], source: str = "results") -> list[dict[str, Any]]:
    """A COCO results list whose image ids all exist in ``gt`` (else an error listing the strays)."""
    if isinstance(results, dict) and "annotations" in results:
        results = results["annotations"]  # a COCO dataset used as results: take its annotations
    if not isinstance(results, list):
        raise InputError(f"{source}: a COCO results file is a JSON list of detections")
    known = {img["id"] for img in gt["images"]}
    strays: set[Any] = set()
    out = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "image_id" not in r or "segmentation" not in r:
            raise InputError(f"{source}: detection {i} needs 'image_id' and 'segmentation'")
        for key in ("score", coco.MASK_SCORE):  # they rank the detections: numbers or absent
            if key in r and (isinstance(r[key], bool) or not isinstance(r[key], int | float)
                             or not math.isfinite(r[key])):
                raise InputError(f"{source}: detection {i} has {key} {r[key]!r}; expected a finite number")
        if r["image_id"] not in known:
            strays.add(r["image_id"])
            continue
        out.append({"category_id": coco.CATEGORY["id"], "score": 1.0, **r})
    if strays:
        shown = ", ".join(repr(s) for s in sorted(strays, key=str)[:10])
        raise InputError(f"{source}: {len(strays)} image id(s) are missing from the ground truth: {shown}"
                         f"{' ...' if len(strays) > 10 else ''}")
    return out


def masks_by_image(entries: Iterable[dict[str, Any]], images: Sequence[dict[str, Any]],
                   min_score: float | None = None) -> dict[Any, np.ndarray]:
    """image id -> (N, H, W) bool stack of the entries' masks (results below ``min_score`` left out)."""
    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if min_score is None or float(e.get("score", 1.0)) >= min_score:
            grouped[e["image_id"]].append(e)
    out = {}
    for img in images:
        h, w = int(img["height"]), int(img["width"])
        items = grouped.get(img["id"], [])
        stack = np.zeros((len(items), h, w), bool)
        for i, e in enumerate(items):
            try:
                stack[i] = coco.decode_mask(e["segmentation"], h, w)
            except Exception as exc:
                raise InputError(f"image {img['id']}: cannot decode a segmentation ({type(exc).__name__}: {exc})") from None
        out[img["id"]] = stack
    return out


def image_roots(gt_path: str | Path | None, images_dir: str | Path | None) -> list[Path]:
    """Where image ``file_name``s are looked up: ``--images``, else the GT file's folder and its images/."""
    if images_dir is not None:
        return [Path(images_dir)]
    if gt_path is None:
        return [Path(".")]
    folder = Path(gt_path).resolve().parent
    return [folder, folder / "images"]


def resolve_image(file_name: str, roots: Sequence[Path]) -> Path:
    """The first existing ``root / file_name``; InputError listing the places tried."""
    tried = [root / file_name for root in roots]
    for p in tried:
        if p.is_file():
            return p
    raise InputError(f"image {file_name!r} not found; looked in: {', '.join(str(p) for p in tried)}")
