"""``wirewatch bench model``: per-frame latency of the segmentation model, PyTorch eager vs onnxruntime.

Both sides do the same work per frame: the network plus full-frame masks for the
detections above the score threshold (PyTorch pastes in torch, the runtime with
numpy/OpenCV). Frames are synthesised default-preset images at the requested size.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("wirewatch.bench")


@dataclass(frozen=True)
class ModelBenchRow:
    runtime: str
    device: str
    variant: str
    frames: int
    median_ms: float
    p90_ms: float
    frames_per_s: float
    detections_mean: float


def synth_frames(count: int, size: int, seed: int = 7000) -> list[np.ndarray]:
    """Default-preset frames as the segmenters take them (float32 0..1)."""
    from wirewatch.synth import SynthConfig, generate

    cfg = SynthConfig.preset("ptychography", size=size)  # type: ignore[attr-defined]
    return [(generate(cfg, seed + i).image.astype(np.float32) / 255.0) for i in range(count)]


def time_frames(name: str, device: str, variant: str, frames: Sequence[np.ndarray],
                run: Callable[[np.ndarray], int], warmup: int = 1) -> ModelBenchRow:
    for frame in frames[:warmup]:
        run(frame)
    latencies, counts = [], []
    for frame in frames:
        t0 = time.perf_counter()
        counts.append(run(frame))
        latencies.append(time.perf_counter() - t0)
    median = statistics.median(latencies)
    p90 = float(np.percentile(latencies, 90))
    return ModelBenchRow(name, device, variant, len(frames), round(median * 1e3, 1), round(p90 * 1e3, 1),
                         round(1.0 / median, 2), round(float(np.mean(counts)), 1))


def torch_runner(checkpoint: Path | None, variant: str, score_threshold: float, threads: int,
                 device: str = "cpu", half: bool = False) -> tuple[Callable[[np.ndarray], int], str]:
    """A frame -> detection-count runner and the variant it runs (the checkpoint's own, when given).

    ``half``: fp16 autocast (CUDA), as a GPU deployment would run it; the runner also takes a stacked
    (B, H, W) array and runs it as one batch, returning the total detection count.
    """
    import torch

    from wirewatch.export.onnx import model_from_checkpoint
    from wirewatch.train.model import build_model, grey_to_model_input

    torch.set_num_threads(threads)
    if checkpoint is not None:
        model, state = model_from_checkpoint(checkpoint)
        variant = str(state.get("variant", state.get("config", {}).get("variant", variant)))
    else:
        torch.manual_seed(0)
        model = build_model(variant).eval()
    roi_heads: Any = model.roi_heads
    roi_heads.score_thresh = score_threshold  # paste only what the runtime would keep
    model.to(device)

    @torch.no_grad()
    def run(frame: np.ndarray) -> int:
        frames = frame if frame.ndim == 3 else frame[None]
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
        with torch.autocast(device.split(":")[0], dtype=torch.float16, enabled=half):
            outs = model([grey_to_model_input(f) for f in x])
        return sum(len((o["masks"][:, 0] >= 0.5).cpu().numpy()) for o in outs)

    return run, variant


def run_benchmark(model: str, checkpoint: Path | None, variant: str, frames: int, size: int,
                  score_threshold: float, threads: int = 2, views: Sequence[int] = (),
                  cpu: bool = True, gpu_batch: int = 8, mask_shapes: Sequence[str] = (),
                  mask_refiners: Sequence[str] = ()) -> list[ModelBenchRow]:
    """Rows for PyTorch eager and onnxruntime (CPU; CUDA/TensorRT providers and GPU torch when present);
    one more onnxruntime CPU row per test-time ``views`` count asked for (``wirewatch.segment.views``), and
    one per fitted ``mask_shapes`` entry (``rect``, ``rod``: ``wirewatch.segment.shape_fit``) and one per
    ``mask_refiners`` entry (``default`` or a refiner file: ``wirewatch.segment.refine``).
    ``cpu=False`` leaves the CPU rows out (a GPU machine's many cores say nothing about the target host).
    On CUDA: PyTorch eager fp32 and fp16 per frame, and fp16 on batches of ``gpu_batch`` frames."""
    import onnxruntime as ort

    from wirewatch.segment.onnx_backend import OnnxSegmenter

    images = synth_frames(frames, size)
    rows: list[ModelBenchRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path: str | Path = model
        if checkpoint is None and model == "random" and cpu:
            # Same random weights on both sides: export them first.
            import torch

            from wirewatch.export.onnx import export_onnx
            from wirewatch.train.loop import CHECKPOINT_FORMAT

            torch.manual_seed(0)
            from wirewatch.train.model import build_model

            ckpt = Path(tmp) / "random.pt"
            torch.save({"format": CHECKPOINT_FORMAT, "model": build_model(variant).state_dict(),
                        "variant": variant, "config": {"variant": variant}}, ckpt)
            checkpoint = ckpt
            onnx_path = export_onnx(ckpt, Path(tmp) / "random.onnx", input_size=(size, size))
        torch_variant = variant
        if cpu:
            run_torch, torch_variant = torch_runner(checkpoint, variant, score_threshold, threads)
            rows.append(time_frames("pytorch eager", "cpu", torch_variant, images, run_torch))
            # the PyTorch row pastes the head's masks: so does this one (mask_refine rows add the refiner)
            seg = OnnxSegmenter(onnx_path, providers=["CPUExecutionProvider"], score_threshold=score_threshold,
                                threads=threads, mask_refine="none")
            variant = seg.metadata.variant
            rows.append(time_frames("onnxruntime", "cpu", variant, images, _counter(seg)))
        for n in views if cpu else ():
            seg_views = OnnxSegmenter(onnx_path, providers=["CPUExecutionProvider"], score_threshold=score_threshold,
                                      threads=threads, views=n, mask_refine="none")
            rows.append(time_frames(f"onnxruntime views={n}", "cpu", variant, images, _counter(seg_views)))
        for shape in mask_shapes if cpu else ():
            seg_shape = OnnxSegmenter(onnx_path, providers=["CPUExecutionProvider"], score_threshold=score_threshold,
                                      threads=threads, mask_shape=shape, mask_refine="none")
            rows.append(time_frames(f"onnxruntime mask_shape={shape}", "cpu", variant, images, _counter(seg_shape)))
        for refiner in mask_refiners if cpu else ():
            seg_refine = OnnxSegmenter(onnx_path, providers=["CPUExecutionProvider"], score_threshold=score_threshold,
                                       threads=threads, mask_refine=refiner)
            rows.append(time_frames(f"onnxruntime mask_refine={refiner}", "cpu", variant, images,
                                    _counter(seg_refine)))
        available = ort.get_available_providers()
        for provider, label in (("CUDAExecutionProvider", "onnxruntime cuda"),
                                ("TensorrtExecutionProvider", "onnxruntime tensorrt-ep")):
            if provider in available:
                gpu_seg = OnnxSegmenter(onnx_path, providers=[provider, "CPUExecutionProvider"],
                                        score_threshold=score_threshold, mask_refine="none")
                rows.append(time_frames(label, "gpu", variant, images, _counter(gpu_seg), warmup=3))
        try:
            import torch

            if torch.cuda.is_available():
                run_gpu, torch_variant = torch_runner(checkpoint, torch_variant, score_threshold, threads,
                                                      device="cuda")
                rows.append(time_frames("pytorch eager", "cuda", torch_variant, images, run_gpu, warmup=3))
                try:
                    rows.extend(half_rows(checkpoint, torch_variant, score_threshold, threads, images, gpu_batch))
                except RuntimeError as exc:  # an op without fp16 support must not cost the fp32 row
                    log.warning("fp16 CUDA rows left out: %s", exc)
        except ImportError:
            pass
    return rows


def half_rows(checkpoint: Path | None, variant: str, score_threshold: float, threads: int,
              images: Sequence[np.ndarray], gpu_batch: int) -> list[ModelBenchRow]:
    """PyTorch eager fp16 on CUDA: per frame, and on stacked batches of ``gpu_batch`` frames (per-frame figures)."""
    run_half, _ = torch_runner(checkpoint, variant, score_threshold, threads, device="cuda", half=True)
    rows = [time_frames("pytorch eager fp16", "cuda", variant, images, run_half, warmup=3)]
    batches = [np.stack([images[(i + k) % len(images)] for k in range(gpu_batch)])
               for i in range(0, len(images), gpu_batch)]
    row = time_frames(f"pytorch eager fp16 batch {gpu_batch}", "cuda", variant, batches, run_half, warmup=2)
    # A batch's latency is shared by its frames.
    rows.append(replace(row, frames=row.frames * gpu_batch, median_ms=round(row.median_ms / gpu_batch, 2),
                        p90_ms=round(row.p90_ms / gpu_batch, 2), frames_per_s=round(row.frames_per_s * gpu_batch, 1),
                        detections_mean=round(row.detections_mean / gpu_batch, 1)))
    return rows


def as_dicts(rows: Sequence[ModelBenchRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def _counter(segmenter: Any) -> Callable[[np.ndarray], int]:
    def run(frame: np.ndarray) -> int:
        return len(segmenter.segment(frame))

    return run
