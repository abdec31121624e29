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


# The ship rule on the evaluation panel (wirewatch.evaluate.panel), written before any panel was scored
# (issue 37): a candidate replaces the shipped model when its panel mean mask AP is higher by at least
# MIN_GAIN, the default preset keeps mask AP >= DEFAULT_MIN, and no set falls more than MAX_SET_DROP below
# the shipped model's. The goals are reported beside it, not required (the shipped model meets none).
PANEL_DEFAULT_SET = "preset-ptychography"
PANEL_RULE: dict[str, float] = {"min_gain": 0.005, "default_min": 0.80, "max_set_drop": 0.03}
PANEL_GOALS = {"default_min": 0.80, "every_set_min": 0.45, "mean_min": 0.65}


def _mask_ap(report: dict[str, Any], label: str) -> dict[str, float]:
    return {row["set"]: float(row["scores"][label]["segm.AP"]) for row in report["sets"]}


def panel_goals(report: dict[str, Any], label: str, baseline: str = "watershed") -> dict[str, Any]:
    """Which of the issue's panel goals ``label`` meets (every set >= 0.45, mean >= 0.65, default >= 0.80, every
    set at least the watershed baseline's AP)."""
    ap = _mask_ap(report, label)
    base = _mask_ap(report, baseline) if baseline in report["segmenters"] else {}
    default = ap.get(PANEL_DEFAULT_SET, float("nan"))
    return {"default_min": default >= PANEL_GOALS["default_min"],
            "every_set_min": sorted(k for k, v in ap.items() if v < PANEL_GOALS["every_set_min"]) or True,
            "mean_min": float(np.mean(list(ap.values()))) >= PANEL_GOALS["mean_min"],
            "beats_baseline": sorted(k for k, v in ap.items() if k in base and v < base[k]) or True}


def panel_decision(report: dict[str, Any], candidate: str, shipped: str) -> dict[str, Any]:
    """``PANEL_RULE`` applied to two segmenters' columns of one panel report: ship the candidate or not, and why."""
    cand, ship = _mask_ap(report, candidate), _mask_ap(report, shipped)
    gain = float(np.mean(list(cand.values())) - np.mean(list(ship.values())))
    drops = {k: round(ship[k] - v, 4) for k, v in cand.items() if ship[k] - v > PANEL_RULE["max_set_drop"]}
    default = cand.get(PANEL_DEFAULT_SET, float("nan"))
    reasons = []
    if gain < PANEL_RULE["min_gain"]:
        reasons.append(f"panel mean mask AP gain {gain:+.4f} < {PANEL_RULE['min_gain']}")
    if not default >= PANEL_RULE["default_min"]:
        reasons.append(f"default preset mask AP {default:.3f} < {PANEL_RULE['default_min']}")
    if drops:
        reasons.append(f"sets falling more than {PANEL_RULE['max_set_drop']}: {drops}")
    return {"ship": not reasons, "reasons": reasons, "mean_gain": round(gain, 4), "rule": PANEL_RULE,
            "goals": panel_goals(report, candidate)}


def main(argv: list[str] | None = None) -> None:
    from wirewatch.segment import load_segmenter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=None, help="synth folder (required without --panel)")
    parser.add_argument("--panel", action="store_true",
                        help="score on the evaluation panel (with --baseline: apply PANEL_RULE) instead of --data")
    parser.add_argument("--panel-frames", type=int, default=20, help="frames per panel set")
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
    if args.panel:
        _panel_main(args, options)
        return
    if args.data is None:
        parser.error("--data is required (or --panel)")
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


def _panel_main(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """The candidate (and --baseline, the shipped model) with the watershed baseline on the panel, through the
    runtime path users get (scale and polarity auto); the rule's verdict when a baseline is given."""
    from wirewatch.evaluate.panel import MODEL_OPTIONS, markdown_table, run_panel
    from wirewatch.segment.fit import load_fitted_segmenter

    options = {**MODEL_OPTIONS, **options}
    segmenters = {"candidate": load_fitted_segmenter(args.backend, options)}
    if args.baseline is not None:
        segmenters["shipped"] = load_fitted_segmenter(args.backend, {**options, "model": args.baseline})
    segmenters["watershed"] = load_fitted_segmenter("watershed", {})
    report = run_panel(segmenters, frames=args.panel_frames, progress=print)
    print(markdown_table(report))
    if args.baseline is not None:
        report["decision"] = panel_decision(report, "candidate", "shipped")
    else:
        report["goals"] = panel_goals(report, "candidate")
    report.update({"backend": args.backend, "model": args.model, "baseline_model": args.baseline, "options": options})
    text = json.dumps({k: v for k, v in report.items() if k != "sets"} | {"sets": report["sets"]}, indent=1)
    print(json.dumps(report.get("decision", report.get("goals")), indent=1))
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
