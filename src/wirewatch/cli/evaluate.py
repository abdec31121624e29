"""``wirewatch evaluate``: COCO AP, segmentation accuracy and statistics agreement against ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

# Rows of the printed table, in order; every metric is in --json.
SHOWN = ("bbox.AP", "bbox.AP50", "bbox.AP75", "bbox.APs", "bbox.APm", "bbox.APl",
         "segm.AP", "segm.AP50", "segm.AP75", "segm.APs", "segm.APm", "segm.APl",
         "seg_accuracy", "count_pred", "count_gt", "count_error",
         "stats.area_px.ks", "stats.area_px.wasserstein", "stats.aspect_ratio.ks", "stats.aspect_ratio.wasserstein",
         "stats.orientation_deg.ks", "stats.orientation_deg.wasserstein", "stats.length_px.ks",
         "stats.length_px.wasserstein", "stats.width_px.ks", "stats.width_px.wasserstein")


def evaluate(
    gt_path: Path | None = typer.Option(None, "--gt", help="COCO ground truth JSON (not with --panel)."),
    results_path: Path | None = typer.Option(None, "--results", help="COCO results JSON to score."),
    backend: str | None = typer.Option(None, "--backend", help="Or: segment the ground truth's images with this backend."),
    model: str = typer.Option("default", "--model", help="Model for the backend ('default': the shipped one)."),
    option: list[str] = typer.Option([], "--option", help="Backend option key=value (repeatable), e.g. merge_ratio=0.6."),
    images: Path | None = typer.Option(None, "--images", help="Folder of the images (default: the GT file's folder "
                                       "and its images/ sub-folder)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every metric under stable keys to this file."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for comparison maps, overlays and distributions."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", help="Minimum score for pixel accuracy, counts, stats."),
    save_results: Path | None = typer.Option(None, "--save-results", help="With --backend: also write its COCO results."),
    panel: bool = typer.Option(False, "--panel", help="Score the model (--backend, default onnxruntime) and the "
                               "watershed baseline on the fixed evaluation panel (docs/model.md) instead of --gt."),
    panel_frames: int = typer.Option(20, "--panel-frames", help="Frames per panel set."),
    panel_size: int = typer.Option(512, "--panel-size", help="Panel frame size (px)."),
    panel_sets: str | None = typer.Option(None, "--panel-sets", help="Comma-separated panel sets (default: all)."),
    panel_variant: list[str] = typer.Option([], "--panel-variant", help="Model options for one panel column, "
                                            "comma-separated key=value (repeatable), e.g. 'scale=none,polarity=bright' "
                                            "(the runtime before issue 37) and 'scale=auto'; default: the options as "
                                            "given."),
    markdown: Path | None = typer.Option(None, "--markdown", help="With --panel: also write the table as markdown."),
) -> None:
    """Score detections against COCO ground truth with pycocotools (AP, AP50, AP75, APs/m/l for boxes and masks),
    segmentation accuracy TP/(TP+FP+FN), count error and KS / Wasserstein agreement of the particle statistics.

    Example: wirewatch evaluate --gt data/synth/val.json --backend watershed --json runs/ws.json --plots runs/ws
    """
    from rich.console import Console
    from rich.table import Table

    from wirewatch.cli.backends import parse_options
    from wirewatch.errors import InputError
    from wirewatch.evaluate import evaluate as run_evaluation
    from wirewatch.evaluate import image_roots, read_json, segment_ground_truth_images
    from wirewatch.stats import write_json

    if panel:
        if gt_path is not None or results_path is not None:
            raise InputError("--panel draws its own frames: give no --gt or --results")
        _panel(backend or "onnxruntime", model, parse_options(option), panel_frames, panel_size, panel_sets,
               panel_variant, json_out, markdown)
        return
    if gt_path is None:
        raise InputError("give --gt FILE (or --panel)")
    if (results_path is None) == (backend is None):
        raise InputError("give exactly one of --results FILE or --backend NAME")
    gt = read_json(gt_path, "ground truth")
    roots = image_roots(gt_path, images)
    with _bar() as bar:
        if backend is not None:
            from wirewatch.cli.backends import open_segmenter

            segmenter, _ = open_segmenter(backend, model, parse_options(option))
            task = bar.add_task("segment", total=_image_count(gt))
            results = segment_ground_truth_images(gt, segmenter, roots,
                                                  progress=lambda d, _t: bar.update(task, completed=d))
            if save_results is not None:
                write_json(save_results, results, indent=None)
        else:
            assert results_path is not None
            results = read_json(results_path, "results")
        task2 = bar.add_task("score", total=_image_count(gt))
        report = run_evaluation(gt, results, score_threshold=score_threshold, image_roots=roots, plots_dir=plots,
                                progress=lambda d, _t: bar.update(task2, completed=d))
    table = Table(title=f"{gt_path.name}: {int(report.metrics['images'])} images, "
                        f"{int(report.metrics['detections'])} detections")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SHOWN:
        value = report.metrics.get(key)
        if value is not None:
            table.add_row(key, _fmt(value))
    Console().print(table)
    if json_out is not None:
        write_json(json_out, report.metrics)
        typer.echo(f"metrics -> {json_out}")
    if plots is not None:
        typer.echo(f"plots -> {plots}")


def _panel(backend: str, model: str, options: dict[str, object], frames: int, size: int, sets: str | None,
           variants: list[str], json_out: Path | None, markdown: Path | None) -> None:
    """The model under each variant's options and the watershed baseline on the panel; table printed and written."""
    from wirewatch.cli.backends import open_segmenter, parse_options
    from wirewatch.errors import InputError
    from wirewatch.evaluate.panel import MODEL_OPTIONS, markdown_table, run_panel
    from wirewatch.stats import write_json

    if backend == "watershed":
        raise InputError("--panel scores a model backend (onnxruntime, tensorrt) against the watershed baseline")
    segmenters = {}
    for variant in variants or [""]:
        extra = parse_options([item for item in variant.split(",") if item.strip()])
        segmenters[f"model {variant}".strip()] = open_segmenter(backend, model,
                                                                {**MODEL_OPTIONS, **options, **extra})[0]
    segmenters["watershed"] = open_segmenter("watershed", model, {})[0]

    def partial(report: dict[str, object]) -> None:  # the sets done so far, for a run cut short
        if json_out is not None:
            write_json(json_out.with_suffix(".partial.json"), report)

    report = run_panel(segmenters, frames=frames, size=size,
                       sets=[s.strip() for s in sets.split(",") if s.strip()] if sets else None,
                       progress=typer.echo, on_set=partial)
    report.update({"backend": backend, "model": model, "options": options})
    table = markdown_table(report)
    typer.echo(table)
    if json_out is not None:
        write_json(json_out, report)
        typer.echo(f"panel -> {json_out}")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table)
        typer.echo(f"table -> {markdown}")


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


def _image_count(gt: object) -> int:
    images = gt.get("images") if isinstance(gt, dict) else None
    return len(images) if isinstance(images, list) else 0


def _bar():  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True)
