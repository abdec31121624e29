"""``wirewatch synth``: render a synthetic nanowire dataset (COCO, RLE masks) for training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from wirewatch.errors import ConfigError


def load_synth_config(preset: str | None, size: int | None, config_path: Path | None,
                      environ: dict[str, str] | None = None) -> Any:
    """Preset <- YAML file keys <- ``WIREWATCH_SYNTH__...`` environment variables, then ``size``.

    The YAML holds any subset of ``SynthConfig`` fields; ``name`` picks the preset to start from
    when ``--preset`` is not given. A config describes a scene at its own ``size`` (the preset is
    first scaled to it); ``--size`` then rescales the whole scene. Unknown keys or bad values
    raise ConfigError naming them.
    """
    from wirewatch.config.base import deep_merge, env_overrides, read_yaml, validate
    from wirewatch.synth.config import REFERENCE_SIZE, SynthConfig, preset_config, scale_to_size

    file_data: dict[str, Any] = read_yaml(config_path) if config_path is not None else {}
    env = env_overrides(environ).get("synth", {})
    if not isinstance(env, dict):
        raise ConfigError("environment variable WIREWATCH_SYNTH must name a key: WIREWATCH_SYNTH__<KEY>=value")
    layered = deep_merge(file_data, env)
    base_name = preset or str(layered.get("name", "ptychography"))
    own_size = layered.get("size", REFERENCE_SIZE)
    if not isinstance(own_size, int) or isinstance(own_size, bool) or not 16 <= own_size <= 8192:
        raise ConfigError(f"{config_path or 'synth config'}: size must be an integer between 16 and 8192, "
                          f"got {own_size!r}")
    base = preset_config(base_name, own_size)
    data = deep_merge(base.model_dump(), layered)
    data["name"] = base_name
    cfg = validate(SynthConfig, data, str(config_path) if config_path else "synth config")
    return scale_to_size(cfg, size) if size is not None and size != cfg.size else cfg


def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create (images/, train.json, val.json, manifest.json)."),
    count: int = typer.Option(100, "--count", "-n", help="Number of images."),
    size: int | None = typer.Option(None, "--size", help="Image side in pixels (default 512; preset geometry scales with it)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed and config give byte-identical files."),
    preset: str | None = typer.Option(None, "--preset", help="ptychography (default; the paper), realistic, stxm, sem."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes."),
    split: float = typer.Option(0.8, "--split", help="Train fraction for train.json / val.json."),
    no_split: bool = typer.Option(False, "--no-split", help="Write one all.json instead of train/val."),
    tiff: bool = typer.Option(False, "--tiff", help="Also write 32-bit float optical density TIFFs to od/."),
    preview: Path | None = typer.Option(None, "--preview", help="Write a 3 x 3 contact sheet with mask outlines (PNG)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML with SynthConfig keys overriding the preset."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Render synthetic nanowire images with exact instance masks as a COCO dataset.

    Example: wirewatch synth --out data/synth --count 1250 --workers 2 --preview preview.png
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from wirewatch.synth.config import preset_names
    from wirewatch.synth.dataset import write_dataset

    if preset is not None and preset not in preset_names():
        raise ConfigError(f"--preset {preset!r} is unknown; allowed presets: {', '.join(preset_names())}")
    if size is not None and not 16 <= size <= 8192:
        raise ConfigError(f"--size must be between 16 and 8192 pixels, got {size}")
    cfg = load_synth_config(preset, size, config)
    with Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("render", total=count)
        manifest = write_dataset(out, cfg, count, seed, workers, None if no_split else split, tiff=tiff,
                                 preview=preview if preview is None or preview.is_absolute() else Path.cwd() / preview,
                                 overwrite=overwrite, progress=lambda done, _total: bar.update(task, completed=done))
    parts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    typer.echo(f"wrote {count} images ({parts}), {manifest['annotations']} wires, preset {cfg.name}, "
               f"{cfg.size} x {cfg.size}, seed {seed} -> {out}")
    if preview is not None:
        typer.echo(f"preview: {preview}")
