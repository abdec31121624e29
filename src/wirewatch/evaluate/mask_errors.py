"""Where matched masks lose IoU: their edges, wire crossings, or elsewhere (tips, gaps).

    python -m wirewatch.evaluate.mask_errors --model default --data SYNTH_DIR --split val --images 15

Each true wire is paired one-to-one with the predicted mask it overlaps most (greedy by mask IoU,
pairs below ``min_iou`` left unpaired, as mask AP50 would). The pixels a pair gets wrong are then put
in one of three places, both ways (missed: true but not predicted; extra: predicted but not true):

- ``crossing``: pixels that belong to another true wire: the synthesiser's masks are amodal, so a
  wire's mask runs through the wires crossing it, and a mask that bleeds into a crossing wire (or
  stops at it) loses its IoU here;
- ``edge``: pixels within one pixel of the true wire's outline, not at a crossing;
- ``elsewhere``: the rest (missing tips, holes, blobs away from the wire).

All figures are per 100 true pixels of the paired wires, so the three places and the matched IoU
can be read against each other. Torch-free: it scores any runtime backend.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wirewatch.evaluate.metrics import greedy_pairs

PLACES = ("crossing", "edge", "elsewhere")


@dataclass
class MaskErrors:
    """Pixel error counts of paired masks, summed over frames (``add``)."""

    unpaired_truth: int = 0
    true_pixels: int = 0
    crossing_pixels: int = 0  # true pixels of paired wires that another true wire also covers
    missed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLACES, 0))
    extra: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLACES, 0))
    ious: list[float] = field(default_factory=list)  # one per pair

    @property
    def pairs(self) -> int:
        return len(self.ious)

    def add(self, other: MaskErrors) -> None:
        self.unpaired_truth += other.unpaired_truth
        self.true_pixels += other.true_pixels
        self.crossing_pixels += other.crossing_pixels
        for place in PLACES:
            self.missed[place] += other.missed[place]
            self.extra[place] += other.extra[place]
        self.ious.extend(other.ious)

    def summary(self) -> dict[str, Any]:
        """Mean / median / 10th-percentile IoU of the pairs and errors per 100 true pixels."""
        per100 = 100.0 / max(self.true_pixels, 1)
        ious = np.asarray(self.ious, np.float64)
        out: dict[str, Any] = {
            "pairs": self.pairs, "unpaired_truth": self.unpaired_truth,
            "iou_mean": round(float(ious.mean()), 4) if ious.size else None,
            "iou_median": round(float(np.median(ious)), 4) if ious.size else None,
            "iou_p10": round(float(np.percentile(ious, 10)), 4) if ious.size else None,
            "crossing_share_of_truth": round(self.crossing_pixels * per100, 2),
        }
        for place in PLACES:
            out[f"missed.{place}"] = round(self.missed[place] * per100, 2)
            out[f"extra.{place}"] = round(self.extra[place] * per100, 2)
        return out


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(P, Q) IoU between (P, H, W) and (Q, H, W) boolean masks."""
    a = pred.reshape(len(pred), -1).astype(np.float32)
    b = truth.reshape(len(truth), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)


def pair_masks(pred: np.ndarray, truth: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one (pred, truth, IoU) pairs, greedily by IoU, each at least ``min_iou``."""
    if len(pred) == 0 or len(truth) == 0:
        return []
    return greedy_pairs(mask_iou(pred, truth), min_iou)


def outline_band(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel (8-connected) of the mask's outline, inside or out."""
    m = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    return cv2.dilate(m, kernel).astype(bool) & ~cv2.erode(m, kernel).astype(bool)


def frame_mask_errors(pred: np.ndarray, truth: np.ndarray, min_iou: float = 0.5) -> MaskErrors:
    """Errors of one frame's (P, H, W) predicted masks against its (Q, H, W) true masks."""
    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    if pred.ndim != 3 or truth.ndim != 3 or (len(pred) and len(truth) and pred.shape[1:] != truth.shape[1:]):
        raise ValueError(f"masks must be (N, H, W) of one frame size, got {pred.shape} and {truth.shape}")
    out = MaskErrors()
    pairs = pair_masks(pred, truth, min_iou)
    out.unpaired_truth = len(truth) - len(pairs)
    if not pairs:
        return out
    coverage = truth.sum(axis=0, dtype=np.int32)
    for p, t, iou in pairs:
        P, T = pred[p], truth[t]
        crossing = (coverage - T) > 0  # another true wire is here
        edge = outline_band(T) & ~crossing
        elsewhere = ~crossing & ~edge
        missed, extra = T & ~P, P & ~T
        for place, where in zip(PLACES, (crossing, edge, elsewhere), strict=True):
            out.missed[place] += int(np.count_nonzero(missed & where))
            out.extra[place] += int(np.count_nonzero(extra & where))
        out.true_pixels += int(np.count_nonzero(T))
        out.crossing_pixels += int(np.count_nonzero(T & crossing))
        out.ious.append(iou)
    return out


def main(argv: list[str] | None = None) -> None:
    from rich.progress import track

    from wirewatch.segment import load_segmenter
    from wirewatch.train.data import CocoFolder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", required=True, type=Path, help="`wirewatch synth --out` folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="detections kept (default: the model's own threshold)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"model": args.model}
    if args.score_threshold is not None:
        options["score_threshold"] = args.score_threshold
    segmenter = load_segmenter("onnxruntime", **options)
    folder = CocoFolder(args.data, args.split)
    total = MaskErrors()
    for i in track(range(min(args.images, len(folder))), description="mask errors"):
        sample = folder.load(i)
        total.add(frame_mask_errors(segmenter.segment(sample.image).masks, sample.masks))
    text = json.dumps({**total.summary(), "images": min(args.images, len(folder)), "model": str(args.model),
                       "data": str(args.data), "split": args.split}, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
