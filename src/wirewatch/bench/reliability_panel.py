"""The reliability score against per-frame mask AP on the evaluation panel (issue 44's goal).

``python -m wirewatch.bench.reliability_panel [--frames 20] [--size 512] [--json OUT]`` segments every panel
set's frames (``wirewatch.evaluate.panel``: the fixed, never-trained seeds of ``wirewatch evaluate --panel``)
with the shipped model as the daemon runs it (``scale`` / ``polarity`` auto), scores each frame's COCO mask AP
and its ``reliability``, and prints per set the mean AP, the mean reliability, the frames with AP < 0.3 and
the frames flagged (reliability < 0.45), then the AUROC of (1 - reliability) for "AP < 0.3" (goal >= 0.9)
and the share of default-preset frames flagged (goal < 5 %). docs/stats.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch import coco
from wirewatch.evaluate.panel import average_precision, select_sets, set_frames
from wirewatch.quality.reliability import score_frame
from wirewatch.segment.fit import load_fitted_segmenter

POOR_AP = 0.3
FLAG_BELOW = 0.45  # quality.unreliable_below and the SegmentationUnreliable rule's threshold


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney form of the AUROC)."""
    if not positive.size or not negative.size:
        return math.nan
    above = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(above / (positive.size * negative.size))


def frame_rows(frames: int, size: int, sets: list[str] | None = None) -> list[dict[str, Any]]:
    segmenter = load_fitted_segmenter("onnxruntime", {"model": "default"})
    rows: list[dict[str, Any]] = []
    for index, panel_set in select_sets(sets):
        gt, images = set_frames(index, panel_set, frames, size)
        for i, image in enumerate(images):
            det = segmenter.segment(image)
            truth = [a for a in gt["annotations"] if a["image_id"] == i + 1]
            results = []
            for box, score, mask_score, mask in zip(det.boxes, det.scores, det.mask_confidence, det.masks,
                                                    strict=True):
                if mask.any():
                    x0, y0, x1, y1 = (float(v) for v in box)
                    results.append({**coco.result(i + 1, mask, float(score), float(mask_score)),
                                    "bbox": [x0, y0, x1 - x0, y1 - y0]})
            one = {**gt, "images": [gt["images"][i]], "annotations": truth}
            ap = average_precision(one, results)["segm.AP"] if truth else math.nan
            rows.append({"set": panel_set.name, "frame": i, "ap": ap, "reliability": score_frame(image, det).score})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [r for r in rows if math.isfinite(r["ap"]) and r["ap"] >= 0]
    poor = np.array([r["ap"] < POOR_AP for r in scored], bool)
    doubt = np.array([1.0 - r["reliability"] for r in scored])
    flagged = doubt > 1.0 - FLAG_BELOW
    default = [r for r in rows if r["set"] == "preset-ptychography"]
    return {"frames": len(scored), "poor_frames": int(poor.sum()), "auroc": round(auroc(doubt[poor], doubt[~poor]), 3),
            "poor_flagged": int((flagged & poor).sum()), "others_flagged": int((flagged & ~poor).sum()),
            "default_frames": len(default),
            "default_flagged": sum(r["reliability"] < FLAG_BELOW for r in default)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per panel set")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--sets", default=None, help="comma-separated panel set names (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = frame_rows(args.frames, args.size, args.sets.split(",") if args.sets else None)
    for name in dict.fromkeys(r["set"] for r in rows):
        sub = [r for r in rows if r["set"] == name]
        print(f"{name:22s} AP {np.nanmean([r['ap'] for r in sub]):.3f}  reliability "
              f"{np.mean([r['reliability'] for r in sub]):.2f}  AP < {POOR_AP}: {sum(r['ap'] < POOR_AP for r in sub)}"
              f"  flagged: {sum(r['reliability'] < FLAG_BELOW for r in sub)} of {len(sub)}")
    out = {**summary(rows), "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps({"summary": out, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
