"""``wirewatch bench synth``: images per second of the synthesiser, per preset and worker count.

Two figures per preset: ``render`` (``generate`` in memory, one process) and ``dataset``
(``write_dataset`` end to end: render, PNG encoding, RLE annotations, JSON, manifest) with
1 and 2 workers. The target for the default preset is >= 25 images/s at 512 x 512.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from wirewatch.synth.config import preset_config
from wirewatch.synth.dataset import write_dataset
from wirewatch.synth.generate import generate

TARGET_IMAGES_PER_S = 25.0


@dataclass(frozen=True)
class SynthBenchRow:
    preset: str
    size: int
    mode: str  # "render" (in memory) or "dataset" (files written)
    workers: int
    images: int
    seconds: float
    images_per_s: float
    wires_per_image: float
    # Images per CPU-second of this process (in-process rows only; None with worker processes):
    # what one idle core would give, robust to other jobs sharing the machine.
    images_per_cpu_s: float | None = None


def bench_render(preset: str, size: int, count: int, seed: int = 0) -> SynthBenchRow:
    cfg = preset_config(preset, size)
    generate(cfg, seed + 10_000)  # warm-up: imports, first allocations
    wires = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        wires += len(generate(cfg, seed + i).wires)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return SynthBenchRow(preset, size, "render", 1, count, dt, count / dt, wires / count, count / cpu)


def bench_dataset(preset: str, size: int, count: int, workers: int, seed: int = 0) -> SynthBenchRow:
    cfg = preset_config(preset, size)
    with tempfile.TemporaryDirectory(prefix="wirewatch-bench-synth-") as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        manifest = write_dataset(Path(tmp) / "ds", cfg, count, seed, workers)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    per_cpu = count / cpu if workers == 1 else None
    return SynthBenchRow(preset, size, "dataset", workers, count, dt, count / dt, manifest["annotations"] / count,
                         per_cpu)


def run(presets: list[str], size: int, count: int, workers: list[int]) -> list[SynthBenchRow]:
    rows = []
    for preset in presets:
        rows.append(bench_render(preset, size, count))
        rows.extend(bench_dataset(preset, size, count, w) for w in workers)
    return rows


def as_dicts(rows: list[SynthBenchRow]) -> list[dict]:
    return [asdict(r) for r in rows]
