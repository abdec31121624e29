"""``wirewatch stats``: particle descriptors for every annotation of a COCO file (``wirewatch bench stats``:
``wirewatch.cli.bench_stats``)."""

from __future__ import annotations

from pathlib import Path

import typer


def stats(
    coco_file: Path = typer.Option(..., "--coco", help="COCO ground truth (dataset) or results (list) JSON."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for particles.csv and frames.csv."),
    images: Path | None = typer.Option(None, "--images", help="Folder of the image files (optical density columns). "
                                       "Default: the COCO file's folder and its images/ sub-folder."),
    gt: Path | None = typer.Option(None, "--gt", help="COCO dataset (or segment's images.json) listing the images "
                                   "of a results file: ids, sizes and file names."),
    pixel_size_nm: float | None = typer.Option(None, "--pixel-size-nm", help="Nanometres per pixel: adds *_nm "
                                               "columns and number density."),
    score_threshold: float = typer.Option(0.0, "--score-threshold", help="Results: keep detections scoring at least this."),
) -> None:
    """Measure every particle of a COCO file into particles.csv (one row per particle) and frames.csv.

    Example: wirewatch stats --coco data/synth/val.json --out runs/stats --pixel-size-nm 10
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from wirewatch.evaluate import (
        PARTICLE_HEADER,
        check_ground_truth,
        check_results,
        frame_header,
        image_roots,
        images_from_results,
        measure_coco,
        read_json,
    )
    from wirewatch.stats import check_pixel_size, write_csv

    pixel_size_nm = check_pixel_size(pixel_size_nm)  # before any work or output
    data = read_json(coco_file, "COCO")
    if isinstance(data, list):  # a results file
        if gt is not None:
            dataset = check_ground_truth(read_json(gt, "ground truth"), str(gt))
            entries = check_results(data, dataset, str(coco_file))
            image_list = dataset["images"]
            roots = image_roots(gt, images)
        else:
            entries = check_results(data, {"images": [{"id": r.get("image_id")} for r in data if isinstance(r, dict)]},
                                    str(coco_file))
            image_list = images_from_results(entries)
            roots = [images] if images is not None else []
        min_score: float | None = score_threshold
    else:
        dataset = check_ground_truth(data, str(coco_file))
        entries, image_list = dataset["annotations"], dataset["images"]
        roots = image_roots(coco_file, images)
        min_score = None
    with Progress(TextColumn("stats"), BarColumn(), MofNCompleteColumn(), transient=True) as bar:
        task = bar.add_task("measure", total=len(image_list))
        particles, frames = measure_coco(entries, image_list, image_roots=roots, require_images=images is not None,
                                         pixel_size_nm=pixel_size_nm, min_score=min_score,
                                         progress=lambda done, _t: bar.update(task, completed=done))
    write_csv(out / "particles.csv", PARTICLE_HEADER, particles)
    write_csv(out / "frames.csv", frame_header(pixel_size_nm), frames)
    typer.echo(f"{len(particles)} particles in {len(frames)} images -> {out / 'particles.csv'}, {out / 'frames.csv'}")
