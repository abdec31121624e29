"""``wirewatch bench model``: PyTorch eager vs onnxruntime per-frame latency at 512 x 512."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def bench_model(
    model: str = typer.Option("default", "--model", help="ONNX model ('default': the shipped one; 'random': "
                              "random weights of --variant exported on the fly)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Training checkpoint of the same model "
                                           "for the PyTorch row (else random weights of --variant)."),
    variant: str = typer.Option("compact", "--variant", help="compact or r50_fpn (with --model random)."),
    frames: int = typer.Option(10, "--frames", "-n", help="Frames timed per row."),
    size: int = typer.Option(512, "--size", help="Frame side in pixels."),
    score_threshold: float = typer.Option(0.5, "--score-threshold"),
    threads: int = typer.Option(2, "--threads"),
    views: list[int] = typer.Option([], "--views", help="Also time onnxruntime CPU with this many test-time "
                                    "views (2 or 4: the frame and its mirror images; repeatable)."),
    mask_shapes: list[str] = typer.Option([], "--mask-shape", help="Also time onnxruntime CPU with this "
                                          "mask_shape (rect or rod: each mask replaced by its fitted shape; "
                                          "repeatable)."),
    mask_refiners: list[str] = typer.Option([], "--mask-refine", help="Also time onnxruntime CPU with this "
                                            "mask refiner (default: the shipped one, or a refiner .onnx file; "
                                            "repeatable)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON."),
    cpu: bool = typer.Option(True, "--cpu/--gpu-only", help="--gpu-only: leave out the CPU rows "
                             "(on a GPU machine, PyTorch eager fp32 / fp16 / fp16 batched on CUDA)."),
    gpu_batch: int = typer.Option(8, "--gpu-batch", help="Frames per batch in the batched CUDA row."),
) -> None:
    """Per-frame latency and frames/s: PyTorch eager vs onnxruntime (CPU; GPU rows when available)."""
    import os

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.model import as_dicts, run_benchmark
    from wirewatch.errors import InputError

    if frames < 1 or not 64 <= size <= 4096:
        raise InputError("--frames must be >= 1 and --size within 64..4096")
    from wirewatch.segment.refine import resolve_refiner
    from wirewatch.segment.shape_fit import check_mask_shape

    for shape in mask_shapes:  # refused before any row runs
        check_mask_shape(shape)
    for refiner in mask_refiners:
        resolve_refiner(refiner)
    if checkpoint is None and model != "random":
        raise InputError("the PyTorch row needs the model's weights: give --checkpoint CKPT (the run's final.pt), "
                         "or use --model random --variant V to compare random weights on both sides")
    console = Console()
    console.print(f"model benchmark: {frames} frames {size} x {size}, {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.2f}")
    if not cpu:
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--gpu-only: torch {torch.__version__} sees no CUDA GPU on this machine")
    rows = run_benchmark(model, checkpoint, variant, frames, size, score_threshold, threads, views, cpu=cpu,
                         gpu_batch=gpu_batch, mask_shapes=mask_shapes,
                         mask_refiners=mask_refiners)
    table = Table(title=f"segmentation model per frame at {size} x {size}")
    for col in ("runtime", "device", "variant", "median ms", "p90 ms", "frames/s", "detections"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.runtime, r.device, r.variant, f"{r.median_ms:.1f}", f"{r.p90_ms:.1f}",
                      f"{r.frames_per_s:.2f}", f"{r.detections_mean:.1f}")
    console.print(table)
    if cpu:
        base = next(r for r in rows if r.runtime == "pytorch eager" and r.device == "cpu")
        ort_cpu = next(r for r in rows if r.runtime == "onnxruntime" and r.device == "cpu")
        console.print(f"onnxruntime CPU / PyTorch eager CPU speed ratio: {base.median_ms / ort_cpu.median_ms:.2f}x")
    from wirewatch.bench.scale import bench_estimate

    est = bench_estimate(size, frames=max(frames, 20))  # what segment.options.scale: auto adds per frame
    console.print(f"scale auto (wire width estimate, then at most one resize): {est['median_ms']:.2f} ms median, "
                  f"{est['p90_ms']:.2f} ms p90 per {size} px frame ({est['cpu_median_ms']:.2f} ms CPU)")
    if json_out is not None:
        json_out.write_text(json.dumps(as_dicts(rows), indent=1))
