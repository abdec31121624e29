"""Score a runtime segmenter on a synthesiser folder: the model card's numbers.

Box AP uses the detector's boxes, mask AP its pasted masks (pycocotools, every detection
counted even above 100 per frame, see ``validate.coco_ap``). Used for the shipped model
(``python -m wirewatch.train.ship``) and usable for any backend, e.g. the watershed baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from wirewatch import coco
from wirewatch.segment.base import Segmenter
from wirewatch.train.data import CocoFolder
from wirewatch.train.validate import coco_ap, detection_result


def score_segmenter(segmenter: Segmenter, folder: CocoFolder, limit: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """AP metrics plus seconds per frame of ``segmenter`` on (the first ``limit``) images of ``folder``."""
    from rich.progress import Progress

    n = len(folder) if limit is None else min(limit, len(folder))
    images = folder.images[:n]
    ids = {int(im["id"]) for im in images}
    gt = coco.dataset(images, [a for a in folder.coco["annotations"] if a["image_id"] in ids])
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
    metrics: dict[str, Any] = dict(coco_ap(gt, results))
    metrics.update({"images": n, "detections": len(results), "instances": len(gt["annotations"]),
                    "seconds_per_frame": round(seconds / max(n, 1), 3)})
    return metrics


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
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    for item in args.option:
        key, _, raw = item.partition("=")
        options[key] = json.loads(raw) if raw[:1].isdigit() or raw[:1] in "-[{" else raw
    if args.backend != "watershed":
        options["model"] = args.model
    segmenter = load_segmenter(args.backend, **options)
    metrics = score_segmenter(segmenter, CocoFolder(args.data, args.split), args.limit)
    metrics.update({"backend": args.backend, "model": args.model if args.backend != "watershed" else None,
                    "data": str(args.data), "options": options})
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
