"""``wirewatch segment``: run a segmenter backend on image files; COCO results, overlays, particle tables.

The backend is chosen and loaded by ``wirewatch.cli.backends`` (``--backend auto`` as every command), each
image is measured by ``wirewatch.stats.measure_detections`` (what the web upload uses too). Paths that do not
exist are an error before anything runs; when no image can be read at all nothing is written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

log = logging.getLogger(__name__)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a folder contributes its image files (sorted). A path that does not exist, or a folder
    without image files, is an ``InputError`` naming it (before any work is done)."""
    from wirewatch.errors import InputError
    from wirewatch.segment.io import IMAGE_SUFFIXES

    out: list[Path] = []
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"image not found: {', '.join(missing)}")
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
            if not found:
                raise InputError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {p}")
            out.extend(found)
        else:
            out.append(p)
    return out


@dataclass
class _Outputs:
    """What the run collects for its output files."""

    results: list[dict[str, Any]] = field(default_factory=list)  # COCO results, every detection
    images: list[dict[str, Any]] = field(default_factory=list)  # COCO image entries
    particles: list[dict[str, Any]] = field(default_factory=list)  # particles.csv rows (kept detections)
    summary: list[dict[str, Any]] = field(default_factory=list)  # summary.csv rows, one per image
    overlay_names: set[str] = field(default_factory=set)  # overlays/<name>.png written so far
    failures: list[str] = field(default_factory=list)  # images that could not be read


def _segment_one(segmenter: Any, path: Path, image: Any, acc: _Outputs, out: Path, *, score_threshold: float,
                 pixel_size_nm: float | None) -> None:
    from wirewatch import coco
    from wirewatch.plots import overlay_rgb, save_rgb
    from wirewatch.stats import measure_detections

    t0 = time.perf_counter()
    det = segmenter.segment(image)
    seconds = time.perf_counter() - t0
    image_id = len(acc.images) + 1
    h, w = image.shape
    acc.images.append({"id": image_id, "file_name": str(path.resolve()), "height": h, "width": w})
    first_result = len(acc.results)
    acc.results.extend(coco.result(image_id, m, float(s), float(ms))
                       for m, s, ms in zip(det.masks, det.scores, det.mask_confidence, strict=True))
    measured = measure_detections(det, image, score_threshold=score_threshold, pixel_size_nm=pixel_size_nm,
                                  frame_id=image_id)
    rows = measured.rows(image_id=image_id, file_name=str(path))
    for row, d in zip(rows, measured.detection.tolist(), strict=True):
        row["annotation_id"] = first_result + int(d) + 1  # 1-based position in results.json
    acc.particles.extend(rows)
    acc.summary.append({"image_id": image_id, "file_name": str(path), "detections": len(det), "seconds": seconds,
                        **measured.stats.aggregates})
    name = f"{path.stem}.png" if path.stem + ".png" not in acc.overlay_names else f"{path.stem}_{image_id}.png"
    acc.overlay_names.add(name)
    save_rgb(overlay_rgb(image, measured.masks), out / "overlays" / name)


def segment(
    images: list[Path] = typer.Argument(..., help="Image files (PNG, TIFF, JPEG) or folders of them."),
    backend: str = typer.Option("auto", "--backend", "-b", help="Segmenter backend: auto (the shipped model when "
                                "installed, else watershed), watershed, onnxruntime, tensorrt, ray."),
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from wirewatch.cli.backends import open_segmenter, parse_options
    from wirewatch.errors import InputError
    from wirewatch.segment.io import read_image
    from wirewatch.stats import check_pixel_size

    pixel_size_nm = check_pixel_size(pixel_size_nm)
    if not 0.0 <= score_threshold <= 1.0:
        raise InputError(f"--score-threshold must be between 0 and 1, got {score_threshold}")
    files = expand_inputs(images)
    if not files:
        raise InputError("no image files given")
    segmenter, backend_name = open_segmenter(backend, model, parse_options(option), pixel_size_nm=pixel_size_nm)

    acc = _Outputs()
    with Progress(TextColumn("segment"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  transient=True) as bar:
        task = bar.add_task("", total=len(files))
        for n, path in enumerate(files, 1):
            bar.update(task, description=path.name)
            try:
                image = read_image(path)
            except InputError as exc:
                acc.failures.append(str(exc))  # keep going: the other images' outputs are still written
            else:
                _segment_one(segmenter, path, image, acc, out, score_threshold=score_threshold,
                             pixel_size_nm=pixel_size_nm)
            bar.update(task, completed=n)

    if not acc.images:  # nothing was read: no empty results to mistake for "no wires found"
        raise InputError(f"none of the {len(files)} image(s) could be read (nothing written to {out}):\n  "
                         + "\n  ".join(acc.failures))
    _write_outputs(acc, out, backend=backend_name, model=model, pixel_size_nm=pixel_size_nm)
    _print_table(acc, out, backend=backend_name, score_threshold=score_threshold)
    if acc.failures:
        raise InputError(f"{len(acc.failures)} of {len(files)} image(s) could not be read (outputs for the others "
                         "were written):\n  " + "\n  ".join(acc.failures))


def _write_outputs(acc: _Outputs, out: Path, *, backend: str, model: str, pixel_size_nm: float | None) -> None:
    from wirewatch import coco
    from wirewatch.evaluate.tables import PARTICLE_HEADER
    from wirewatch.stats import aggregate_names, write_csv, write_json

    write_json(out / "results.json", acc.results, indent=None)
    write_json(out / "images.json", coco.dataset(acc.images, [], info={"backend": backend, "model": model}))
    write_csv(out / "particles.csv", PARTICLE_HEADER, acc.particles)
    summary_header = ("image_id", "file_name", "detections", "seconds",
                      *aggregate_names(with_pixel_size=pixel_size_nm is not None))
    write_csv(out / "summary.csv", summary_header, acc.summary)


def _print_table(acc: _Outputs, out: Path, *, backend: str, score_threshold: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{backend}: {len(acc.summary)} images -> {out}")
    for col in ("image", "detections", f"kept (score >= {score_threshold:g})", "coverage", "mean length px", "ms"):
        table.add_column(col, justify="right" if col != "image" else "left")
    for row in acc.summary:
        table.add_row(Path(row["file_name"]).name, str(row["detections"]), str(int(row["particle_count"])),
                      f"{row['coverage_fraction']:.3f}", _num(row["length_px_mean"]), f"{row['seconds'] * 1e3:.0f}")
    Console().print(table)


def _num(value: float) -> str:
    return "n/a" if value != value else f"{value:.1f}"
