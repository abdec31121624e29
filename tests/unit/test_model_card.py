"""``wirewatch.train.card``: the model card's tables and recipe come from the run's own files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from wirewatch.train.card import write_card


def _run(tmp_path: Path, **recipe: object) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"config": {"name": "ptychography"}, "count": 30, "size": 64,
                                                    "seed": 1, "counts": {"train": 24, "val": 6}}))
    run = tmp_path / "run"
    run.mkdir()
    cfg = dict(data=str(data), out=str(run), variant="compact", batch_size=4, crop_size=48, lr=0.005,
               momentum=0.9, weight_decay=1e-4, warmup_steps=50, time_budget_s=7000.0, steps=100000,
               grad_clip=10.0, seed=5, threads=2, val_every=500, val_images=40, loss_weights={"loss_mask": 2.0}, **recipe)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.csv").write_text(
        "step,elapsed_s,lr,loss,s_per_step,bbox.AP,bbox.AP50,segm.AP,segm.AP50\n"
        "490,900.0,0.005,0.8,1.9,,,,\n"
        "500,920.0,0.005,0.8,1.9,0.737,0.947,0.525,0.858\n")
    evals = tmp_path / "eval"
    evals.mkdir()
    scores = {"bbox.AP": 0.86, "bbox.AP50": 0.95, "bbox.AP75": 0.9, "segm.AP": 0.6, "segm.AP50": 0.9,
              "segm.AP75": 0.7, "images": 200, "instances": 5623, "seconds_per_frame": 0.13,
              "data": "/x/eval-ptychography-200-seed1001"}
    (evals / "model-ptychography.json").write_text(json.dumps(scores))
    (evals / "watershed-ptychography.json").write_text(json.dumps({**scores, "segm.AP": 0.129}))
    return run, evals


def test_card_states_recipe_validation_cadence_and_verdicts_from_the_files(tmp_path: Path) -> None:
    run, evals = _run(tmp_path)
    card = write_card(run, evals, tmp_path / "out", bench=None).read_text()
    assert "SGD lr 0.005" in card and "cosine decay to zero over 7000 s" in card
    assert "seed 5, 2 thread(s), loss_mask weighted 2.0)" in card and "Dice" not in card
    assert "validation AP on 40 val images every 500 steps" in card
    assert "| 500 | 0.737 | 0.947 | 0.525 | 0.858 |" in card
    assert "bbox.AP 0.860 vs target 0.85 (met)" in card and "segm.AP 0.600 vs target 0.85 (NOT met)" in card
    assert "mask AP 4.7x the watershed baseline's (target >= 3x: met)" in card
    assert "Ran 500 steps in 15 min (2000 crops seen)" in card
    assert "trained on 48 px crops of 64 px frames" in card and "batch 4, 48 px crops" in card
    assert (tmp_path / "out" / "default.train-config.yaml").is_file()
    assert (tmp_path / "out" / "default.synth-manifest.json").is_file()


def test_card_names_the_dice_term_of_the_mask_loss(tmp_path: Path) -> None:
    run, evals = _run(tmp_path, mask_dice_weight=1.0)
    card = write_card(run, evals, tmp_path / "out", bench=None).read_text()
    assert "2 thread(s), mask loss BCE + 1.0 x Dice, loss_mask weighted 2.0)" in card


def test_card_of_a_gpu_leg_names_the_gpu_and_lists_gpu_rows(tmp_path: Path) -> None:
    run, evals = _run(tmp_path, device="cuda", loader_workers=14)
    row = dict(median_ms=1.0, p90_ms=1.0, frames_per_s=1.0, detections_mean=27.0, frames=20)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{**row, "runtime": "pytorch eager", "device": "cpu", "variant": "compact_m4",
                                  "median_ms": 300.0},
                                 {**row, "runtime": "onnxruntime", "device": "cpu", "variant": "compact_m4",
                                  "median_ms": 150.0},
                                 {**row, "runtime": "pytorch eager fp16", "device": "cuda", "variant": "r50_fpn",
                                  "median_ms": 55.8}]))
    card = write_card(run, evals, tmp_path / "out", bench=bench).read_text()
    assert "images only, on a shared 2-core CPU and, for the last legs, one GPU." in card
    assert "seed 5, on cuda with 14 crop workers, loss_mask weighted 2.0)" in card
    assert "| pytorch eager fp16 | cuda | r50_fpn | 55.8 |" in card
    assert "speed ratio on CPU: 2.00x." in card and "No GPU was available" not in card

    (tmp_path / "cpu").mkdir()
    cpu_run, _ = _run(tmp_path / "cpu")
    cpu_bench = tmp_path / "cpu-bench.json"
    cpu_bench.write_text(json.dumps(json.loads(bench.read_text())[:2]))
    cpu_card = write_card(cpu_run, evals, tmp_path / "out-cpu", bench=cpu_bench).read_text()
    assert "images only, on a shared 2-core CPU." in cpu_card and "No GPU was available" in cpu_card


def test_card_names_each_mixed_in_folder_and_keeps_its_manifest(tmp_path: Path) -> None:
    extra = tmp_path / "realistic"
    extra.mkdir()
    (extra / "manifest.json").write_text(json.dumps({"config": {"name": "realistic"}, "count": 1500, "seed": 2501}))
    run, evals = _run(tmp_path, extra_data=[{"path": str(extra), "fraction": 0.4}])
    card = write_card(run, evals, tmp_path / "out", bench=None).read_text()
    assert ("- Mixed in (40% of training samples): preset `realistic`, 1500 images, seed 2501 "
            "(full config: `default.synth-manifest.extra-1.json`)") in card
    assert "hashes every folder's hash and fraction" in card
    assert json.loads((tmp_path / "out" / "default.synth-manifest.extra-1.json").read_text())["seed"] == 2501
    (tmp_path / "plain").mkdir()
    plain = write_card(*_run(tmp_path / "plain"), tmp_path / "out-plain", bench=None).read_text()
    assert "Mixed in" not in plain and "every folder's hash" not in plain


def test_card_of_a_blend_says_what_was_mixed(tmp_path: Path) -> None:
    run, evals = _run(tmp_path)
    (run / "blend.json").write_text(json.dumps({"base": "/r/gpu-r23/final.pt", "tuned": "/r/compact-r25/final.pt",
                                                "alpha": 0.5, "bn_batches": 25}))
    card = write_card(run, evals, tmp_path / "out", bench=None).read_text()
    assert ("- Weights: 0.5 x the parent (`/r/gpu-r23/final.pt`) + 0.5 x the leg above (`/r/compact-r25/final.pt`), "
            "interpolated by `wirewatch.train.blend` (WiSE-FT), BatchNorm statistics re-estimated on 25 batches") in card
