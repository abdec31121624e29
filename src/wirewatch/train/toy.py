"""A tiny rod dataset in the synthesiser's folder layout, for smoke runs and tests.

Not a substitute for ``wirewatch synth``: rotated bright rectangles on a dark
background, enough for a few training steps to show the loss falling.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from wirewatch import coco


def write_toy_dataset(root: str | Path, n_train: int = 8, n_val: int = 2, size: int = 96,
                      rods: tuple[int, int] = (2, 5), seed: int = 0) -> Path:
    """Write ``images/``, ``train.json``, ``val.json`` and ``manifest.json`` under ``root``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list[dict], list[dict]]] = {"train": ([], []), "val": ([], [])}
    ann_id = 1
    for idx in range(n_train + n_val):
        split = "train" if idx < n_train else "val"
        od = np.zeros((size, size), np.float32)
        masks = []
        for _ in range(int(rng.integers(rods[0], rods[1] + 1))):
            centre = rng.uniform(0.15 * size, 0.85 * size, 2)
            length, width = rng.uniform(0.2 * size, 0.5 * size), rng.uniform(3, 6)
            angle = rng.uniform(0, 180)
            corners = cv2.boxPoints(((float(centre[0]), float(centre[1])), (length, width), angle))
            mask = np.zeros((size, size), np.uint8)
            cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
            if mask.sum() < 16:
                continue
            od += mask * rng.uniform(0.5, 0.8)
            masks.append(mask.astype(bool))
        image = np.clip(od + rng.normal(0.05, 0.02, od.shape), 0, 1)
        name = f"{idx:06d}.png"
        cv2.imwrite(str(root / "images" / name), np.round(image * 255).astype(np.uint8))
        images, anns = splits[split]
        images.append({"id": idx, "file_name": name, "height": size, "width": size})
        for mask in masks:
            anns.append(coco.annotation(ann_id, idx, mask))
            ann_id += 1
    for split, (images, anns) in splits.items():
        (root / f"{split}.json").write_text(json.dumps(coco.dataset(images, anns)))
    (root / "manifest.json").write_text(json.dumps({"generator": "wirewatch.train.toy", "seed": seed,
                                                    "size": size, "n_train": n_train, "n_val": n_val}))
    return root
