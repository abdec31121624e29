"""Nanowire image synthesiser: presets, in-memory API, COCO dataset writer, preview.

    from wirewatch.synth import SynthConfig, generate, write_dataset
    cfg = SynthConfig.preset("ptychography", size=256)
    sample = generate(cfg, seed=0)          # sample.image, sample.od, sample.masks, sample.wires
    write_dataset("out/", cfg, count=100, seed=0, workers=2)
"""

from wirewatch.synth.config import (
    PRESETS,
    Background,
    Contrast,
    CountRange,
    Dist,
    Noise,
    Orientation,
    Shape,
    SynthConfig,
    Wires,
    magnify,
    preset_config,
    preset_names,
    scale_to_size,
    with_overrides,
)
from wirewatch.synth.dataset import read_manifest, sample_seed, write_dataset
from wirewatch.synth.generate import Sample, WireParams, generate

__all__ = [
    "PRESETS",
    "Background",
    "Contrast",
    "CountRange",
    "Dist",
    "Noise",
    "Orientation",
    "Sample",
    "Shape",
    "SynthConfig",
    "WireParams",
    "Wires",
    "generate",
    "magnify",
    "preset_config",
    "preset_names",
    "read_manifest",
    "sample_seed",
    "scale_to_size",
    "with_overrides",
    "write_dataset",
]
