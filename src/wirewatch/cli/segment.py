"""``wirewatch segment``: run a segmenter backend on image files; COCO results, overlays, particle tables."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import typer

log = logging.getLogger(__name__)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings -> dict, values parsed as YAML scalars (numbers, booleans, null)."""
    import yaml

    from wirewatch.errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def build_segmenter(backend: str, model: str, options: dict[str, Any], pixel_size_nm: float | None = None) -> Any:
    """The backend with the model behind the daemon's resize / scale / tile path (``FitSegmenter``: frames over
    1024 px resized, ``scale`` option: auto for models), a missing backend module or bad option a clear error."""
    from wirewatch.errors import BackendUnavailable, InputError
    from wirewatch.segment.fit import load_fitted_segmenter

    try:
        return load_fitted_segmenter(backend, {"model": model, **options}, pixel_size_nm=pixel_size_nm)
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(f"segmenter backend {backend!r} is not available here: {exc}") from None
    except TypeError as exc:
        raise InputError(f"backend {backend!r} rejected its options {sorted(options)}: {exc}") from None


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a folder contributes its image files (sorted)."""
    from wirewatch.segment.io import IMAGE_SUFFIXES

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()))
        else:
            out.append(p)
    return out


def segment(
    images: list[Path] = typer.Argument(..., help="Image files (PNG, TIFF, JPEG) or folders of them."),
    backend: str = typer.Option(..., "--backend", "-b", help="Segmenter backend: watershed, onnxruntime, tensorrt."),
    model: str = typer.Option("default", "--model", "-m", help="Model file for neural backends ('default': shipped)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    option: list[str] = typer.Option([], "--option", help="Backend option key=value (repeatable); scale=auto|none|"
                                     "FACTOR resizes frames so wires match the model's training widths (model "
                                     "backends: auto)."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", help="Minimum score for overlays and tables "
                                          "(results.json keeps every detection)."),
    pixel_size_nm: float | None = typer.Option(None, "--pixel-size-nm", help="Nanometres per pixel for *_nm columns."),
) -> None:
    """Segment images: results.json (COCO results, RLE masks, scores), images.json (their COCO image entries),
    overlays/<name>.png, particles.csv and summary.csv (one row per image).

    Example: wirewatch segment data/synth/images --backend watershed --out runs/seg
    """
    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from wirewatch import coco
    from wirewatch.errors import InputError
    from wirewatch.evaluate.tables import PARTICLE_HEADER
    from wirewatch.plots import overlay_rgb, save_rgb
    from wirewatch.segment.io import read_image
    from wirewatch.stats import (
        aggregate_names,
        check_pixel_size,
        measure,
        particle_rows,
        write_csv,
        write_json,
    )

    pixel_size_nm = check_pixel_size(pixel_size_nm)
    if not 0.0 <= score_threshold <= 1.0:
        raise InputError(f"--score-threshold must be between 0 and 1, got {score_threshold}")
    files = expand_inputs(images)
    if not files:
        raise InputError("no image files found in the given paths")
    segmenter = build_segmenter(backend, model, parse_options(option), pixel_size_nm)

    results: list[dict[str, Any]] = []
    image_entries: list[dict[str, Any]] = []
    particles: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    failures: list[str] = []
    used_names: set[str] = set()
    with Progress(TextColumn("segment"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  transient=True) as bar:
        task = bar.add_task("", total=len(files))
        for n, path in enumerate(files, 1):
            bar.update(task, description=path.name)
            try:
                image = read_image(path)
            except InputError as exc:
                failures.append(str(exc))  # keep going: the other images' outputs are still written
                bar.update(task, completed=n)
                continue
            t0 = time.perf_counter()
            det = segmenter.segment(image)
            seconds = time.perf_counter() - t0
            image_id = len(image_entries) + 1
            h, w = image.shape
            image_entries.append({"id": image_id, "file_name": str(path.resolve()), "height": h, "width": w})
            first_result = len(results)
            results.extend(coco.result(image_id, m, float(s), float(ms))
                           for m, s, ms in zip(det.masks, det.scores, det.mask_confidence, strict=True))
            keep = np.flatnonzero(det.scores >= score_threshold)
            stats = measure(det.masks[keep], image, pixel_size_nm=pixel_size_nm, frame_id=image_id)
            detection = keep[np.asarray(stats.particles["mask_index"], int)]
            rows = particle_rows({k: v for k, v in stats.particles.items() if k != "mask_index"},
                                 image_id=image_id, file_name=str(path))
            for row, d in zip(rows, detection, strict=True):
                row["annotation_id"] = first_result + int(d) + 1  # 1-based position in results.json
                row["score"] = float(det.scores[d])
                row["mask_score"] = float(det.mask_confidence[d])
            particles.extend(rows)
            summary.append({"image_id": image_id, "file_name": str(path), "detections": len(det),
                            "seconds": seconds, **stats.aggregates})
            name = f"{path.stem}.png" if path.stem + ".png" not in used_names else f"{path.stem}_{image_id}.png"
            used_names.add(name)
            save_rgb(overlay_rgb(image, det.masks[keep]), out / "overlays" / name)
            bar.update(task, completed=n)

    write_json(out / "results.json", results, indent=None)
    write_json(out / "images.json", coco.dataset(image_entries, [], info={"backend": backend, "model": model}))
    write_csv(out / "particles.csv", PARTICLE_HEADER, particles)
    summary_header = ("image_id", "file_name", "detections", "seconds",
                      *aggregate_names(with_pixel_size=pixel_size_nm is not None))
    write_csv(out / "summary.csv", summary_header, summary)

    table = Table(title=f"{backend}: {len(summary)} images -> {out}")
    for col in ("image", "detections", f"kept (score >= {score_threshold:g})", "coverage", "mean length px", "ms"):
        table.add_column(col, justify="right" if col != "image" else "left")
    for row in summary:
        table.add_row(Path(row["file_name"]).name, str(row["detections"]), str(int(row["particle_count"])),
                      f"{row['coverage_fraction']:.3f}", _num(row["length_px_mean"]), f"{row['seconds'] * 1e3:.0f}")
    Console().print(table)
    if failures:
        raise InputError(f"{len(failures)} of {len(files)} image(s) could not be read (outputs for the others "
                         "were written):\n  " + "\n  ".join(failures))


def _num(value: float) -> str:
    return "n/a" if value != value else f"{value:.1f}"
