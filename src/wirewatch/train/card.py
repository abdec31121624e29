"""Write the shipped model's ``MODEL_CARD.md`` from the run folder and the evaluation JSONs.

    python -m wirewatch.train.card --run RUN --eval-dir EVAL --bench BENCH.json --out src/wirewatch/models

Copies the recipe and training records next to the model (``default.*``) so the package
carries them, and fills the card's tables from the numbers (nothing typed by hand).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

TARGETS = {"segm.AP": 0.85, "bbox.AP": 0.85}
VARIANT_WORDS = {
    "compact": "ResNet-18 + FPN 128 ch, trainable BatchNorm, slim heads, 28 x 28 masks from 14 x 14 RoIs on FPN levels by box size",
    "compact_m4": "as compact, with a 4-conv mask head (torchvision's depth) instead of 2",
    "compact56": "ResNet-18 + FPN 128 ch, trainable BatchNorm, slim heads, 56 x 56 masks from 28 x 28 RoIs "
                 "on the stride-4 level",
    "compact56i": "as compact56, and the mask head also reads the frame's pixels on the 56 x 56 mask grid",
    "r50_fpn": "the paper's ResNet-50 + FPN 256 ch, torchvision's head sizes",
}


def _row(name: str, m: dict[str, Any]) -> str:
    cells = [f"{m[k]:.3f}" if isinstance(m.get(k), float) else "n/a"
             for k in ("bbox.AP", "bbox.AP50", "bbox.AP75", "segm.AP", "segm.AP50", "segm.AP75")]
    return (f"| {name} | {m.get('images', '?')} | {m.get('instances', '?')} | " + " | ".join(cells)
            + f" | {m.get('seconds_per_frame', 'n/a')} |")


def export_description(model: Path | None) -> str:
    """How the shipped file was exported, from its own metadata (precision, size)."""
    if model is None or not model.is_file():
        return "Exported to ONNX opset 17"
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    size = f"{model.stat().st_size / 1e6:.1f} MB"
    if meta.get("precision") == "int8":
        return (f"Exported to ONNX opset 17 with the backbone, FPN and RPN convolutions in int8 (calibrated on "
                f"synthetic frames; RoI heads in float; `wirewatch export` default), {size}")
    return f"Exported to ONNX opset 17 in {meta.get('precision', 'fp32')}, {size}"


def ran_on_gpu(cfg: dict[str, Any]) -> bool:
    return str(cfg.get("device", "cpu")).startswith("cuda")


def trained_where(cfg: dict[str, Any]) -> str:
    """Where the last leg ran: a GPU leg says so (earlier legs are the notes' business)."""
    if ran_on_gpu(cfg):
        return "on a shared 2-core CPU and, for the last legs, one GPU"
    return "on a shared 2-core CPU"


def blend_lines(run: Path) -> list[str]:
    """The card's line for a ``wirewatch.train.blend`` folder: which weights were mixed, and how."""
    if not (run / "blend.json").is_file():
        return []
    info = json.loads((run / "blend.json").read_text())
    alpha = float(info["alpha"])
    return [f"- Weights: {1 - alpha:g} x the parent (`{info['base']}`) + {alpha:g} x the leg above "
            f"(`{info['tuned']}`), interpolated by `wirewatch.train.blend` (WiSE-FT), BatchNorm statistics "
            f"re-estimated on {info['bn_batches']} batches of the leg's training mix; the curve below is the leg's."]


def write_card(run: Path, eval_dir: Path, out: Path, bench: Path | None, notes: str = "",
               model_file: Path | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for src, dst in (("config.yaml", "default.train-config.yaml"), ("train.log", "default.train.log"),
                     ("metrics.csv", "default.metrics.csv"), ("curve.png", "default.curve.png")):
        if (run / src).is_file():
            shutil.copyfile(run / src, out / dst)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = Path(cfg["data"])
    if (data / "manifest.json").is_file():
        shutil.copyfile(data / "manifest.json", out / "default.synth-manifest.json")
    manifest = json.loads((data / "manifest.json").read_text()) if (data / "manifest.json").is_file() else {}
    extra_lines = []
    for i, extra in enumerate(cfg.get("extra_data") or [], start=1):
        extra_manifest = Path(extra["path"]) / "manifest.json"
        info = json.loads(extra_manifest.read_text()) if extra_manifest.is_file() else {}
        if info:
            shutil.copyfile(extra_manifest, out / f"default.synth-manifest.extra-{i}.json")
        extra_lines.append(
            f"- Mixed in ({extra['fraction']:.0%} of training samples): preset "
            f"`{info.get('config', {}).get('name', '?')}`, {info.get('count', '?')} images, seed "
            f"{info.get('seed', '?')} (full config: `default.synth-manifest.extra-{i}.json`); validation stays "
            "on the data above.")
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    last = rows[-1] if rows else {}
    val_rows = [r for r in rows if r.get("segm.AP")]
    evals = {p.stem: json.loads(p.read_text()) for p in sorted(eval_dir.glob("*.json"))}
    model = {k.removeprefix("model-"): v for k, v in evals.items() if k.startswith("model-")}
    baseline = {k.removeprefix("watershed-"): v for k, v in evals.items() if k.startswith("watershed-")}
    from wirewatch.train.model import mask_size

    side = mask_size(cfg["variant"])
    lines = [
        "# Model card: wirewatch default nanowire segmenter (`default.onnx`)",
        "",
        f"Mask R-CNN, `{cfg['variant']}` variant ({VARIANT_WORDS.get(cfg['variant'], cfg['variant'])}; "
        "see `docs/model.md`), one class `nanowire`, trained from random initialisation on synthetic "
        "images only, " + trained_where(cfg) + ". " + export_description(model_file) + f"; the graph ends at {side} x "
        f"{side} mask probabilities, pasted by `wirewatch.segment.paste`. Input: one grey frame, float32 0..1 "
        "(optical density, bright wires), any size, native pixel scale (trained on "
        f"{cfg['crop_size']} px crops of {manifest.get('size', '?')} px frames). "
        "Default score threshold 0.5, mask threshold 0.5.",
        "",
        "## Quality (pycocotools, every detection counted)",
        "",
        "Fresh synthetic images, seeds never used in training; the model scored with "
        "`score_threshold=0.05` (AP needs the low-score tail), boxes are the detector's own.",
        "",
        "| data | images | wires | box AP | box AP50 | box AP75 | mask AP | mask AP50 | mask AP75 | s/frame |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in model.items():
        lines.append(_row(f"model, {name} ({m.get('data', '').rsplit('/', 1)[-1]})", m))
    for name, m in baseline.items():
        lines.append(_row(f"watershed baseline, {name} (default options)", m))
    ptycho = model.get("ptychography")
    if ptycho:
        verdict = []
        for key, target in TARGETS.items():
            ok = ptycho[key] >= target
            verdict.append(f"{key} {ptycho[key]:.3f} vs target {target} ({'met' if ok else 'NOT met'})")
        ws = baseline.get("ptychography")
        if ws and ws.get("segm.AP", 0) > 0:
            ratio = ptycho["segm.AP"] / ws["segm.AP"]
            verdict.append(f"mask AP {ratio:.1f}x the watershed baseline's (target >= 3x: "
                           f"{'met' if ratio >= 3 else 'NOT met'})")
        lines += ["", "Against the issue's targets (default preset): " + "; ".join(verdict) + "."]
    lines += ["", "s/frame: onnxruntime CPU, whole `segment()` call (graph + mask pasting) at score threshold "
              "0.05, as `python -m wirewatch.train.ship` ran it (threads and machine load as it ran; noisy). "
              "The speed table below is the cleaner figure."]
    if bench is not None and bench.is_file():
        lines += ["", "## Speed (`wirewatch bench model`, 512 x 512, same frames, same work)", "",
                  "| runtime | device | variant | median ms | p90 ms | frames/s | detections |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        brow = json.loads(bench.read_text())
        for r in brow:
            lines.append(f"| {r['runtime']} | {r['device']} | {r.get('variant', '')} | {r['median_ms']} | "
                         f"{r['p90_ms']} | {r['frames_per_s']} | {r['detections_mean']} |")
        on_gpu = any(r["device"] in ("cuda", "gpu") for r in brow)
        torch_cpu = next((r for r in brow if r["runtime"] == "pytorch eager" and r["device"] == "cpu"), None)
        ort_cpu = next((r for r in brow if r["runtime"] == "onnxruntime" and r["device"] == "cpu"), None)
        if torch_cpu and ort_cpu:
            lines.append(f"\nonnxruntime / PyTorch eager speed ratio on CPU: "
                         f"{torch_cpu['median_ms'] / ort_cpu['median_ms']:.2f}x."
                         + ("" if on_gpu else " No GPU was available: the GPU rows (CUDA, TensorRT fp16, "
                            "r50_fpn) are still to be measured."))
    lines += [
        "", "## Training", "",
        f"- Data: `wirewatch synth` preset `{manifest.get('config', {}).get('name', '?')}`, "
        f"{manifest.get('count', '?')} images at {manifest.get('size', '?')} x {manifest.get('size', '?')}, "
        f"seed {manifest.get('seed', '?')}, split {manifest.get('counts', {})} "
        "(full config: `default.synth-manifest.json`; its sha256 prefix is the ONNX metadata's "
        "`training_data_config_hash`" + (", which for a mix hashes every folder's hash and fraction" if extra_lines
                                         else "") + ").",
        *extra_lines,
        f"- Recipe: `default.train-config.yaml` (variant {cfg['variant']}, batch {cfg['batch_size']}, "
        f"{cfg['crop_size']} px crops, SGD lr {cfg['lr']} momentum {cfg['momentum']}, weight decay "
        f"{cfg['weight_decay']}, {cfg['warmup_steps']}-step warm-up, cosine decay to zero over "
        + (f"{cfg['time_budget_s']:.0f} s" if cfg.get("time_budget_s") else f"{cfg['steps']} steps")
        + f", gradient clipping {cfg['grad_clip']}, seed {cfg['seed']}, "
        + (f"on {cfg['device']} with {cfg.get('loader_workers', 0)} crop workers"
           if ran_on_gpu(cfg) else f"{cfg['threads']} thread(s)")
        + (f", mask loss BCE + {cfg['mask_dice_weight']} x Dice" if cfg.get("mask_dice_weight") else "")
        + "".join(f", {term} weighted {w}" for term, w in (cfg.get("loss_weights") or {}).items()) + ").",
        f"- Ran {last.get('step', '?')} steps in {float(last.get('elapsed_s', 0) or 0) / 60:.0f} min "
        f"({int(last.get('step', 0) or 0) * cfg['batch_size']} crops seen); mean step time "
        f"in the last log window {last.get('s_per_step', '?')} s.",
        *blend_lines(run),
        "- Records: `default.train.log`, `default.metrics.csv`, learning curve `default.curve.png` "
        f"(training loss; validation AP on {cfg.get('val_images', 40)} val images every "
        f"{cfg.get('val_every', 250)} steps):",
        "",
        "![learning curve](default.curve.png)",
        "",
        "| step | val box AP | val box AP50 | val mask AP | val mask AP50 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in val_rows:
        lines.append(f"| {r['step']} | {r['bbox.AP']} | {r['bbox.AP50']} | {r['segm.AP']} | {r['segm.AP50']} |")
    lines += ["", "- Reproduce: `default.reproduce.sh`.", ""]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--eval-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bench", type=Path, default=None)
    parser.add_argument("--notes", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=None, help="the exported file the card describes")
    args = parser.parse_args(argv)
    notes = args.notes.read_text() if args.notes else ""
    print(write_card(args.run, args.eval_dir, args.out, args.bench, notes, args.model))


if __name__ == "__main__":
    main()
