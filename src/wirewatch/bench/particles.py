"""Disk cost and write time of the per-particle Parquet tables (``wirewatch bench particles``).

Frames are synthetic (``wirewatch.synth``, ``particles`` wires each) measured from their true instance masks,
so the descriptors and RLE masks are real ones. Drawing 1000 frames of 100 wires would take minutes, so
``distinct`` frames are drawn and each written frame is one of them flipped / transposed and shifted at random
(wrapping round), then measured afresh: masks, centroids and orientations differ from frame to frame as in a
run; lengths, widths and areas of the reused wires repeat (at most frames / distinct times), which favours
compression slightly (docs/products.md compares with a real run).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ParticlesBench:
    masks: str
    frames: int
    particles_per_frame: float
    size: int
    bytes: int
    write_s_per_part: float
    write_cpu_s_per_part: float  # CPU time of the writing thread: what a loaded machine does not distort
    roll_frames: int

    @property
    def mb_per_1000_frames(self) -> float:
        return self.bytes / 1e6 * 1000 / self.frames

    @property
    def bytes_per_particle(self) -> float:
        return self.bytes / (self.frames * self.particles_per_frame)


def bench_particles(*, frames: int = 1000, particles: int = 100, size: int = 512, distinct: int = 50,
                    roll_frames: int = 500, masks: tuple[str, ...] = ("none", "rle"),
                    seed: int = 0) -> list[ParticlesBench]:
    from wirewatch.daemon.stages import FrameResult
    from wirewatch.publish.particles import ParticleWriter
    from wirewatch.stats import measure
    from wirewatch.synth import SynthConfig, generate, with_overrides
    from wirewatch.types import Detections, Frame

    cfg = with_overrides(SynthConfig.preset("ptychography", size=size),
                         {"wires.count": {"min": particles, "max": particles}})
    rng = np.random.default_rng(seed)
    drawn = []
    for k in range(distinct):
        sample = generate(cfg, seed=seed + k)
        drawn.append((sample.masks.astype(bool), sample.image / 255.0))
    out = []
    for mask_format in masks:
        with tempfile.TemporaryDirectory(prefix="wirewatch-bench-particles-") as tmp:
            writer = ParticleWriter(tmp, masks=mask_format, roll_frames=roll_frames)  # type: ignore[arg-type]
            rows = 0
            write_s = write_cpu = 0.0
            for i in range(frames):
                stack, image = _variant(*drawn[int(rng.integers(distinct))], rng)
                det = Detections(boxes=np.zeros((len(stack), 4), np.float32),
                                 scores=rng.uniform(0.5, 1.0, len(stack)).astype(np.float32), masks=stack,
                                 image_shape=(size, size))
                stats = measure(det, image, frame_id=i, time=1.7e9 + 0.25 * i)
                frame = Frame(frame_id=i, image=np.zeros((1, 1), np.uint8), time=1.7e9 + 0.25 * i, series_id="bench")
                result = FrameResult(frame=frame, stats=stats, changepoints=(), image=np.zeros((1, 1)),
                                     detections=det, timings={})
                rows += len(stats.particles["area_px"])
                before = writer.parts_written
                t0, c0 = time.perf_counter(), time.thread_time()
                writer.add(result)
                if writer.parts_written != before:
                    write_s += time.perf_counter() - t0
                    write_cpu += time.thread_time() - c0
            t0, c0 = time.perf_counter(), time.thread_time()
            writer.close()
            write_s += time.perf_counter() - t0
            write_cpu += time.thread_time() - c0
            size_b = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
            out.append(ParticlesBench(masks=mask_format, frames=frames, particles_per_frame=rows / frames,
                                      size=size, bytes=size_b, write_s_per_part=write_s / max(1, writer.parts_written),
                                      write_cpu_s_per_part=write_cpu / max(1, writer.parts_written),
                                      roll_frames=roll_frames))
    return out


def _variant(masks: np.ndarray, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips / transposes of a frame, shifted by a random offset (wrapping round)."""
    k = int(rng.integers(8))
    if k & 1:
        masks, image = masks[:, :, ::-1], image[:, ::-1]
    if k & 2:
        masks, image = masks[:, ::-1, :], image[::-1, :]
    if k & 4:
        masks, image = masks.transpose(0, 2, 1), image.T
    dy, dx = (int(v) for v in rng.integers(0, image.shape[0], 2))
    return (np.ascontiguousarray(np.roll(masks, (dy, dx), axis=(1, 2))),
            np.ascontiguousarray(np.roll(image, (dy, dx), axis=(0, 1))))
