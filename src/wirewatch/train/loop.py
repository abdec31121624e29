"""The training loop: cosine schedule with warm-up, checkpoints that resume exactly, metrics and plots.

Run folder layout (``TrainConfig.out``)::

    config.yaml     the resolved configuration (``--resume`` reads it back)
    train.log       one line per ``log_every`` steps, validation and checkpoint events
    metrics.csv     one row per logged step; AP columns filled on validation rows
    curve.png       loss and AP against step, refreshed at every validation
    last.pt         latest checkpoint (model, optimiser, step, elapsed time, RNG states, config)
    final.pt        checkpoint at the end of the schedule
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from wirewatch.errors import InputError, ModelError
from wirewatch.train.batchnorm import precise_batchnorm
from wirewatch.train.config import LOSS_TERMS, TrainConfig
from wirewatch.train.data import CocoFolder, FolderMix, Sample, draw_sample
from wirewatch.train.loader import ParallelBatches
from wirewatch.train.mask_loss import dice_mask_loss
from wirewatch.train.model import CLASS_NAMES, build_model, grey_to_model_input, load_init_weights
from wirewatch.train.validate import evaluate_folder

log = logging.getLogger("wirewatch.train")

AP_KEYS = ("bbox.AP", "bbox.AP50", "bbox.AP75", "segm.AP", "segm.AP50", "segm.AP75")
CSV_COLUMNS = ("step", "elapsed_s", "lr", "loss", *LOSS_TERMS, "s_per_step", *AP_KEYS)
CHECKPOINT_FORMAT = 1
BN_CALIBRATION_BATCHES = 8  # batches of training crops when warm-starting from an ONNX export


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended."""

    run_dir: Path
    step: int
    final_checkpoint: Path | None
    last_losses: dict[str, float]
    last_metrics: dict[str, float]


def lr_factor(step: int, progress: float, warmup_steps: int) -> float:
    """Linear warm-up (from 0.1 %) times cosine decay to zero over ``progress`` in [0, 1]."""
    warm = 1.0 if warmup_steps == 0 or step >= warmup_steps else 0.001 + 0.999 * step / warmup_steps
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def freeze_all_but(model: nn.Module, prefixes: Sequence[str]) -> list[nn.Module]:
    """Freeze every parameter whose name starts with none of ``prefixes`` (none: train everything).

    Returns the frozen BatchNorm layers, which the training step keeps in eval mode: their statistics
    are part of what is frozen (a trained backbone under a new head keeps computing the same features).
    """
    if not prefixes:
        return []
    names = [n for n, _ in model.named_parameters()]
    unmatched = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unmatched:
        raise InputError(f"train_only prefixes {unmatched} match no parameter of this model "
                         f"(e.g. {', '.join(sorted({n.rsplit('.', 2)[0] for n in names})[:5])})")
    for name, param in model.named_parameters():
        param.requires_grad_(any(name.startswith(p) for p in prefixes))
    return [m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and not any(name.startswith(p) for p in prefixes)]


def data_config_hash(root: str | Path) -> str:
    """sha256 of the synthesiser's manifest (its config and seed), or of train.json without one."""
    root = Path(root)
    for name in ("manifest.json", "train.json", "all.json"):
        if (root / name).is_file():
            return hashlib.sha256((root / name).read_bytes()).hexdigest()[:16]
    return "unknown"


def mix_config_hash(parts: list[tuple[str, float]]) -> str:
    """``data_config_hash`` of a single folder; for a mix, the hash of every folder's hash and fraction."""
    if len(parts) == 1:
        return data_config_hash(parts[0][0])
    text = ";".join(f"{data_config_hash(root)}:{fraction:.6g}" for root, fraction in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Trainer:
    """One training run; ``run()`` trains until the schedule ends (or ``max_steps_this_call``)."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, show_progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.show_progress = show_progress
        torch.set_num_threads(cfg.threads)
        self.device = training_device(cfg.device)
        self.train_data = FolderMix.open(cfg.training_parts(), "train")
        try:
            self.val_data: CocoFolder | None = CocoFolder(cfg.data, "val")
        except InputError:
            self.val_data = None
        self.data_hash = mix_config_hash(cfg.training_parts())
        torch.manual_seed(cfg.seed)  # before building: the random init is part of the run's seed
        self.model = build_model(cfg.variant, len(CLASS_NAMES), cfg.detections_per_image).to(self.device)
        self.frozen_batchnorm = freeze_all_but(self.model, cfg.train_only)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.step = 0
        self.elapsed_s = 0.0
        self.rng = np.random.default_rng(cfg.seed)
        self.last_metrics: dict[str, float] = {}
        self._precise_bn_step = -1
        self.loader: ParallelBatches | None = None  # worker processes (loader_workers), made on first use
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._attach_log_file()
        if resume:
            self._load_checkpoint(self.run_dir / "last.pt")
        else:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
            if cfg.init:
                self._init_weights(cfg.init)

    def _init_weights(self, path: str) -> None:
        from wirewatch.train.recover import is_onnx_file, onnx_variant, recalibrate_batchnorm

        if is_onnx_file(path):
            variant = onnx_variant(path)
            if variant is not None and variant != self.cfg.variant:
                raise InputError(f"--init {path} is a {variant!r} model but this run trains {self.cfg.variant!r}")
        report = load_init_weights(self.model, path)
        log.info("init from %s: %s", path, report.summary())
        if is_onnx_file(path):
            # The export folded BatchNorm into the convolutions; re-derive it from training batches
            # so train mode starts from the exported function (see wirewatch.train.recover).
            n = recalibrate_batchnorm(self.model, (self.next_batch()[0] for _ in range(BN_CALIBRATION_BATCHES)))
            log.info("BatchNorm recalibrated on %d training batches (%d layers)", BN_CALIBRATION_BATCHES, n)

    # ----------------------------------------------------------------- schedule
    def progress(self, elapsed_s: float | None = None) -> float:
        if self.cfg.time_budget_s is not None:
            return (self.elapsed_s if elapsed_s is None else elapsed_s) / self.cfg.time_budget_s
        return self.step / self.cfg.steps

    def finished(self, elapsed_s: float | None = None) -> bool:
        return self.progress(elapsed_s) >= 1.0

    def current_lr(self) -> float:
        return self.cfg.lr * lr_factor(self.step, self.progress(), self.cfg.warmup_steps)

    # ----------------------------------------------------------------- data
    def next_batch(self, rng: np.random.Generator | None = None
                   ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        """A batch of augmented random crops, drawn with ``rng`` (default: the run's own generator)."""
        cfg = self.cfg
        if cfg.loader_workers and self.loader is None:
            self.loader = ParallelBatches(cfg.training_parts(), cfg.crop_size, cfg.min_instance_area_px,
                                          cfg.augmentation.build(), cfg.loader_workers, cfg.batch_size)
        if self.loader is not None:
            samples = self.loader.next_batch(self.rng) if rng is None else self.loader.batch_now(rng)
        else:
            rng = self.rng if rng is None else rng
            aug = cfg.augmentation.build()
            samples = [draw_sample(self.train_data, rng, cfg.crop_size, cfg.min_instance_area_px, aug)
                       for _ in range(cfg.batch_size)]
        images, targets = [], []
        for sample in samples:
            image, target = to_torch(sample)
            images.append(image.to(self.device, non_blocking=True))
            targets.append({k: v.to(self.device, non_blocking=True) for k, v in target.items()})
        return images, targets

    # ----------------------------------------------------------------- one step
    def train_step(self) -> dict[str, float]:
        self.model.train()
        for module in self.frozen_batchnorm:
            module.eval()
        images, targets = self.next_batch()
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with dice_mask_loss(self.cfg.mask_dice_weight):
            loss_dict = self.model(images, targets)
        weights = self.cfg.loss_weights
        loss = sum(v * weights.get(k, 1.0) for k, v in loss_dict.items())
        assert isinstance(loss, torch.Tensor)
        values = {k: float(v.detach()) for k, v in loss_dict.items()}
        values["loss"] = float(loss.detach())
        values["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        if math.isfinite(values["loss"]):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
        else:
            log.warning("step %d: non-finite loss %s, update skipped", self.step, values["loss"])
        self.step += 1
        return values

    # ----------------------------------------------------------------- the run
    def run(self, max_steps_this_call: int | None = None,
            on_step: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        cfg = self.cfg
        window: list[dict[str, float]] = []
        last_losses: dict[str, float] = {}
        steps_done = 0
        total = cfg.steps if cfg.time_budget_s is None else None
        progress_bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                disable=not self.show_progress)
        mix = ", ".join(f"{root} {fraction:.0%}" for root, fraction in cfg.training_parts())
        log.info("run %s: step %d, variant %s, data %s (hash %s), %d train images",
                 self.run_dir, self.step, cfg.variant, mix, self.data_hash, len(self.train_data))
        with progress_bar:
            task = progress_bar.add_task("train", total=total, completed=self.step, info="")
            while not self.finished():
                if max_steps_this_call is not None and steps_done >= max_steps_this_call:
                    break
                t0 = time.perf_counter()
                values = self.train_step()
                dt = time.perf_counter() - t0
                values["s_per_step"] = dt
                window.append(values)
                last_losses = values
                steps_done += 1
                if on_step is not None:
                    on_step(self.step, values)
                progress_bar.update(task, completed=self.step,
                                    info=f"loss {values['loss']:.3f} lr {values['lr']:.4f} {dt:.2f} s/step")
                validate_now = self.step % cfg.val_every == 0 or self.finished(self.elapsed_s + dt)
                if self.step % cfg.log_every == 0 or validate_now:
                    metrics = self.validate() if validate_now else {}
                    self._log_row(window, metrics)
                    window = []
                # Elapsed time counts validation too, so a time budget ends on the wall clock.
                self.elapsed_s += time.perf_counter() - t0
                if self.step % cfg.checkpoint_every == 0 or self.finished():
                    self.save_checkpoint(self.run_dir / "last.pt")
        final = None
        if self.finished():
            self.precise_bn()  # eval mode (export, the daemon) uses these statistics
            final = self.run_dir / "final.pt"
            self.save_checkpoint(final)
            log.info("schedule finished at step %d (%.0f s); final checkpoint %s", self.step, self.elapsed_s, final)
        if self.loader is not None:
            self.loader.close()
            self.loader = None
        return TrainResult(self.run_dir, self.step, final, last_losses, self.last_metrics)

    def precise_bn(self) -> None:
        """Re-estimate BatchNorm statistics (``wirewatch.train.batchnorm``) on crops of their own generator
        (seeded by run seed and step), so the training sequence does not depend on when this runs."""
        n = self.cfg.precise_bn_batches
        # Re-estimating would overwrite the statistics that train_only froze.
        if n == 0 or self._precise_bn_step == self.step or self.frozen_batchnorm:
            return
        t0 = time.perf_counter()
        rng = np.random.default_rng([self.cfg.seed, self.step])
        precise_batchnorm(self.model, (self.next_batch(rng)[0] for _ in range(n)))
        self._precise_bn_step = self.step
        log.info("step %d BatchNorm statistics re-estimated on %d batches (%.0f s)", self.step, n,
                 time.perf_counter() - t0)

    def validate(self) -> dict[str, float]:
        if self.val_data is None or self.cfg.val_images == 0:
            return {}
        self.precise_bn()
        t0 = time.perf_counter()
        n = min(self.cfg.val_images, len(self.val_data))
        metrics = evaluate_folder(self.model, self.val_data, range(n))
        self.last_metrics = metrics
        log.info("step %d validation on %d images (%.0f s): box AP %.3f AP50 %.3f | mask AP %.3f AP50 %.3f",
                 self.step, n, time.perf_counter() - t0, metrics["bbox.AP"], metrics["bbox.AP50"],
                 metrics["segm.AP"], metrics["segm.AP50"])
        return metrics

    # ----------------------------------------------------------------- records
    def _log_row(self, window: list[dict[str, float]], metrics: dict[str, float]) -> None:
        row: dict[str, Any] = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1),
                               "lr": window[-1]["lr"] if window else self.current_lr()}
        for key in ("loss", *LOSS_TERMS, "s_per_step"):
            vals = [w[key] for w in window if key in w and math.isfinite(w[key])]
            row[key] = round(float(np.mean(vals)), 5) if vals else ""
        for key in AP_KEYS:
            row[key] = round(metrics[key], 4) if key in metrics else ""
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        log.info("step %d loss %s (mask %s) lr %.5f %s s/step", self.step, row["loss"], row["loss_mask"],
                 row["lr"], row["s_per_step"])
        if metrics:
            try:
                from wirewatch.train.curve import plot_curve

                plot_curve(path, self.run_dir / "curve.png")
            except Exception as exc:  # a plotting problem must never stop training
                log.warning("could not refresh curve.png: %s", exc)

    def _attach_log_file(self) -> None:
        """Send the ``wirewatch.train`` log to this run's train.log, and to no earlier run's: a process that
        makes several Trainers (tests, blends, notebooks) would otherwise append every later run's lines
        to every earlier run's log."""
        path = (self.run_dir / "train.log").resolve()
        for handler in list(log.handlers):
            if not getattr(handler, "wirewatch_run_log", False):
                continue  # a handler the user attached: not ours to remove
            assert isinstance(handler, logging.FileHandler)
            if Path(handler.baseFilename) == path:
                return
            log.removeHandler(handler)
            handler.close()
        handler = logging.FileHandler(path)
        handler.wirewatch_run_log = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.model_dump(),
            "variant": self.cfg.variant,
            "class_names": list(CLASS_NAMES),
            "data_config_hash": self.data_hash,
            "last_metrics": self.last_metrics,
        }

    def save_checkpoint(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(self.checkpoint_state(), tmp)
        os.replace(tmp, path)  # atomic: a kill mid-save leaves the previous checkpoint intact

    def _load_checkpoint(self, path: Path) -> None:
        state = read_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.last_metrics = dict(state.get("last_metrics") or {})
        log.info("resumed %s at step %d (%.0f s elapsed)", path, self.step, self.elapsed_s)
        dropped = trim_metrics_after(self.run_dir / "metrics.csv", self.step)
        if dropped:
            # Those steps are trained again from the checkpoint; keeping both copies would zigzag the curve.
            log.info("metrics.csv: dropped %d row(s) logged after step %d (train.log keeps them)", dropped, self.step)


def trim_metrics_after(path: Path, step: int) -> int:
    """Remove rows for steps after ``step`` from a run's metrics.csv (atomically); returns how many."""
    if not path.is_file():
        return 0
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fieldnames = reader.fieldnames or CSV_COLUMNS
        rows = list(reader)
    kept = [r for r in rows if not r.get("step", "").isdigit() or int(r["step"]) <= step]
    if len(kept) == len(rows):
        return 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)
    return len(rows) - len(kept)


def training_device(name: str) -> torch.device:
    """The torch device a run asked for; a clear error when it asked for a GPU this machine lacks."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} asked for, but torch sees no CUDA GPU on this machine "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use device: cpu")
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls/convs: fp32 range, tensor-core speed
        torch.backends.cudnn.allow_tf32 = True
        # No cudnn.benchmark: the mask head's batch is the RoI count, new every step, and each new shape
        # would be tuned again.
    return torch.device(name)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A wirewatch training checkpoint, with clear errors for missing or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint not found: {p}")
    try:
        # weights_only: a checkpoint is tensors and plain values; never run pickled code from a file.
        state: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read checkpoint {p}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise ModelError(f"{p} is not a wirewatch training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def to_torch(sample: Sample) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A sample as torchvision's detection input: (3, H, W) image and its target dict."""
    image = grey_to_model_input(torch.from_numpy(sample.image))
    n = len(sample.masks)
    target = {
        "boxes": torch.from_numpy(sample.boxes).reshape(n, 4),
        "labels": torch.ones((n,), dtype=torch.int64),
        "masks": torch.from_numpy(sample.masks.astype(np.uint8)),
    }
    return image, target


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run folder was started with (for ``--resume``)."""
    from wirewatch.config.base import load_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise InputError(f"{run_dir} has no config.yaml: not a wirewatch training run folder")
    return load_config(TrainConfig, path, environ={})
