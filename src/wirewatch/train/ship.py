"""Score a runtime segmenter on a synthesiser folder: the model card's numbers.

Box AP uses the detector's boxes, mask AP its pasted masks (pycocotools, every detection
counted even above 100 per frame, see ``validate.coco_ap``). Used for the shipped model
(``python -m wirewatch.train.ship``) and usable for any backend, e.g. the watershed baseline.
``--baseline OTHER`` scores a second model on the same images and reports the candidate-minus-baseline
AP fold by fold (``paired_folds``), which is how a leg is chosen over the shipped model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch import coco
from wirewatch.errors import InputError
from wirewatch.segment.base import Segmenter
from wirewatch.train.data import CocoFolder
from wirewatch.train.validate import coco_ap, detection_result


def scored_count(folder: CocoFolder, limit: int | None) -> int:
    """How many images a run with ``--limit`` scores: the first ``limit``, or all of them."""
    return len(folder) if limit is None else min(limit, len(folder))


def segment_folder(segmenter: Segmenter, folder: CocoFolder, limit: int | None = None,
                   progress: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """Ground truth, COCO results and total segmenting seconds of ``segmenter`` on (the first ``limit``)
    images of ``folder``."""
    from rich.progress import Progress

    n = scored_count(folder, limit)
    gt = coco.subset(folder.coco, folder.images[:n])
    results: list[dict[str, Any]] = []
    seconds = 0.0
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"{segmenter.name} on {folder.root.name}", total=n)
        for i in range(n):
            sample = folder.load(i)
            t0 = time.perf_counter()
            dets = segmenter.segment(sample.image)
            seconds += time.perf_counter() - t0
            image_id = int(folder.images[i]["id"])
            for box, score, mask_score, mask in zip(dets.boxes, dets.scores, dets.mask_confidence, dets.masks,
                                                    strict=True):
                if mask.any():
                    results.append(detection_result(image_id, box, mask, float(score), float(mask_score)))
            bar.update(task, advance=1)
    return gt, results, seconds


def score_results(gt: dict[str, Any], results: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    metrics: dict[str, Any] = dict(coco_ap(gt, results))
    n = len(gt["images"])
    metrics.update({"images": n, "detections": len(results), "instances": len(gt["annotations"]),
                    "seconds_per_frame": round(seconds / max(n, 1), 3)})
    return metrics


def score_segmenter(segmenter: Segmenter, folder: CocoFolder, limit: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """AP metrics plus seconds per frame of ``segmenter`` on (the first ``limit``) images of ``folder``."""
    return score_results(*segment_folder(segmenter, folder, limit, progress))


def paired_folds(gt: dict[str, Any], results: list[dict[str, Any]], baseline: list[dict[str, Any]],
                 folds: int = 10) -> dict[str, Any]:
    """Candidate minus baseline AP on ``folds`` disjoint, consecutive sets of the same images.

    Two models scored on one image set differ by a few thousandths of AP between training legs; the
    spread of the per-fold differences says whether such a gap is the model or the images.
    """
    images = gt["images"]
    if not 2 <= folds <= len(images):
        raise InputError(f"--folds must be between 2 and the number of images ({len(images)}), got {folds}")
    rows: dict[str, list[tuple[float, float]]] = {"bbox.AP": [], "segm.AP": []}
    for f in range(folds):
        part = images[f * len(images) // folds:(f + 1) * len(images) // folds]
        ids = {int(im["id"]) for im in part}
        fold_gt = coco.subset(gt, part)
        cand = coco_ap(fold_gt, [r for r in results if r["image_id"] in ids])
        base = coco_ap(fold_gt, [r for r in baseline if r["image_id"] in ids])
        for key in rows:
            rows[key].append((cand[key], base[key]))
    out: dict[str, Any] = {"folds": folds}
    for key, pairs in rows.items():
        diff = np.array([c - b for c, b in pairs])
        out[key] = {"candidate": [round(c, 4) for c, _ in pairs], "baseline": [round(b, 4) for _, b in pairs],
                    "mean_diff": round(float(diff.mean()), 4),
                    "se_diff": round(float(diff.std(ddof=1) / np.sqrt(folds)), 4),
                    "folds_better": int((diff > 0).sum())}
    return out


def main(argv: list[str] | None = None) -> None:
    from wirewatch.segment import load_segmenter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", required=True, help="synth folder")
    parser.add_argument("--split", default="all")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--option", action="append", default=[], help="backend option key=value")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--baseline", default=None,
                        help="second model (same backend and options) to compare with on the same images, fold by fold")
    parser.add_argument("--folds", type=int, default=10, help="disjoint image sets for --baseline")
    args = parser.parse_args(argv)
    if args.baseline is not None and args.backend == "watershed":
        parser.error("--baseline compares two models of one model backend, not watershed")
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    options: dict[str, Any] = {}
    for item in args.option:
        key, _, raw = item.partition("=")
        options[key] = json.loads(raw) if raw[:1].isdigit() or raw[:1] in "-[{" else raw
    if args.backend != "watershed":
        options["model"] = args.model
    folder = CocoFolder(args.data, args.split)
    n = scored_count(folder, args.limit)
    if args.baseline is not None and args.folds > n:
        parser.error(f"--folds {args.folds} is more than the {n} images scored")  # before minutes of inference
    gt, results, seconds = segment_folder(load_segmenter(args.backend, **options), folder, args.limit)
    metrics = score_results(gt, results, seconds)
    if args.baseline is not None:
        _, base_results, base_seconds = segment_folder(load_segmenter(args.backend, **{**options, "model": args.baseline}),
                                                       folder, args.limit)
        metrics["baseline"] = {"model": args.baseline, **score_results(gt, base_results, base_seconds)}
        metrics["paired"] = paired_folds(gt, results, base_results, args.folds)
    metrics.update({"backend": args.backend, "model": args.model if args.backend != "watershed" else None,
                    "data": str(args.data), "options": options})
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
