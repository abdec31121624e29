"""Particle and frame tables for every annotation of a COCO file (ground truth or results)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch import coco
from wirewatch.errors import InputError
from wirewatch.evaluate.cocofile import masks_by_image, resolve_image
from wirewatch.stats import PARTICLE_COLUMNS, aggregate_names, check_pixel_size, measure, particle_rows

log = logging.getLogger(__name__)

PARTICLE_HEADER: tuple[str, ...] = ("image_id", "annotation_id", "file_name", "score", "mask_score",
                                    *(c for c in PARTICLE_COLUMNS if c != "mask_index"))


def frame_header(pixel_size_nm: float | None) -> tuple[str, ...]:
    return ("image_id", "file_name", *aggregate_names(with_pixel_size=pixel_size_nm is not None))


def images_from_results(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Image entries (id, height, width) recovered from the results' RLE ``size`` fields."""
    seen: dict[Any, dict[str, Any]] = {}
    for r in results:
        seg = r.get("segmentation")
        size = seg.get("size") if isinstance(seg, dict) else None
        if not (isinstance(size, list | tuple) and len(size) == 2):
            raise InputError(f"detection for image {r.get('image_id')!r} has no RLE size; "
                             "give the ground truth (or the images.json written by 'wirewatch segment') with --gt")
        seen.setdefault(r["image_id"], {"id": r["image_id"], "height": int(size[0]), "width": int(size[1])})
    return list(seen.values())


def measure_coco(entries: Sequence[dict[str, Any]], images: Sequence[dict[str, Any]], *,
                 image_roots: Sequence[Path] = (), require_images: bool = False,
                 pixel_size_nm: float | None = None, min_score: float | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(particle rows, frame rows) for every image; optical density read from the image files when found.

    ``entries`` are COCO annotations or results; each particle row carries ``image_id``,
    ``annotation_id`` (the entry's ``id``, else its 1-based position in ``entries``), ``score`` and
    ``mask_score`` (empty where the entry has none).
    A frame whose file is missing gets NaN optical density (or an error with ``require_images``).
    """
    pixel_size_nm = check_pixel_size(pixel_size_nm)
    numbered = [{**e, "_ann": e.get("id", i + 1)} for i, e in enumerate(entries)
                if min_score is None or float(e.get("score", 1.0)) >= min_score]
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for e in numbered:
        by_image.setdefault(e["image_id"], []).append(e)
    missing_reported = False
    particles: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    for n, img in enumerate(images):
        items = by_image.get(img["id"], [])
        stack = masks_by_image(items, [img])[img["id"]]
        name = str(img.get("file_name", ""))
        frame = None
        if name and image_roots:
            try:
                from wirewatch.segment.io import read_image

                frame = read_image(resolve_image(name, image_roots))
            except InputError as exc:
                if require_images:
                    raise
                if not missing_reported:
                    log.warning("optical density left empty where images are missing, e.g.: %s", exc)
                    missing_reported = True
            if frame is not None and frame.shape != stack.shape[1:]:
                raise InputError(f"image {name}: size {frame.shape[1]}x{frame.shape[0]} does not match the "
                                 f"annotations' {stack.shape[2]}x{stack.shape[1]}")
        stats = measure(stack, frame, pixel_size_nm=pixel_size_nm, frame_id=n)
        idx = np.asarray(stats.particles["mask_index"], int)
        rows = particle_rows({k: v for k, v in stats.particles.items() if k != "mask_index"},
                             image_id=img["id"], file_name=name)
        for row, i in zip(rows, idx, strict=True):
            row["annotation_id"] = items[i]["_ann"]
            row["score"] = items[i].get("score", "")
            row["mask_score"] = items[i].get(coco.MASK_SCORE, "")
        particles.extend(rows)
        frames.append({"image_id": img["id"], "file_name": name, **stats.aggregates})
        if progress is not None:
            progress(n + 1, len(images))
    return particles, frames
