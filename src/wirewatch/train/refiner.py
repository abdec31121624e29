"""Train the mask refiner (``wirewatch.segment.refine``) on a model's own masks, and export it to ONNX.

The refiner learns from what the runtime gives it: the exported model runs on a synthesiser folder's training
images exactly as in the daemon (levelled frame, pasted windows), each detection matched to a true wire (mask
IoU >= 0.5, or a confident detection's box IoU >= 0.6 where its mask misses the wire) becomes a sample
(``segment.refine.refinement_inputs`` and the wire's true mask over the same rectangle), and a small fully
convolutional net learns to correct the pasted probabilities' logits: random ``CROP`` px crops, the square's
eight symmetries, binary cross-entropy, AdamW with a cosine decay over a time budget. ``last.pt`` is written
every ``CHECKPOINT_EVERY`` steps and ``--resume`` continues a killed run (samples are extracted again, the same
way). ``--extra-data DIR:IMAGES`` adds samples from other synth folders (other presets' contrast) to the same
pool, and the summary gives each folder's val IoU. The result, ``refiner.onnx``, runs with
``--option mask_refine=PATH`` (``mask_refine=default`` is the shipped one, trained for the shipped model).

    python -m wirewatch.train.refiner --data ~/wirewatch-runs/data/ptycho-512-train-v2 --images 900 \
        --time-budget 2400 --out ~/wirewatch-runs/refiner-r1
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from wirewatch.coco import boxes_of
from wirewatch.errors import InputError
from wirewatch.evaluate.metrics import greedy_pairs
from wirewatch.segment.boxes import box_iou as pairwise_box_iou
from wirewatch.segment.refine import (
    FORMAT,
    INPUT_CHANNELS,
    OTHER_SCORE,
    TRAINED_FOR,
    file_sha256,
    refinement_inputs,
)
from wirewatch.segment.views import pasted_windows, window_masks
from wirewatch.train.data import CocoFolder

log = logging.getLogger(__name__)

CROP = 96  # px: training crops (the net's receptive field is 35 px)
BATCH = 16
PEAK_LR = 2e-3
CHECKPOINT_EVERY = 100
MATCH_IOU = 0.5
MATCH_BOX_IOU = 0.6


class RefinerNet(nn.Module):
    """Input conv, residual 3 x 3 convs with dilations 1, 2, 4, 8, 1 (35 px receptive field) and a 1 x 1 conv
    that adds to the pasted probability's logit; the last conv starts at zero, so an untrained net returns the
    pasted probabilities unchanged."""

    def __init__(self, channels: int = 16, dilations: tuple[int, ...] = (1, 2, 4, 8, 1)) -> None:
        super().__init__()
        self.inp = nn.Conv2d(INPUT_CHANNELS, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.out = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) refiner input -> (B, 1, H, W) refined logits."""
        p = z[:, 1:2].clamp(1e-3, 1 - 1e-3)
        h = F.relu(self.inp(z))
        for conv in self.body:
            h = F.relu(conv(h)) + h
        return torch.log(p) - torch.log1p(-p) + self.out(h)


class _Probabilities(nn.Module):
    """What is exported: the net with a sigmoid, probabilities like the pasted ones."""

    def __init__(self, net: RefinerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z))


@dataclass(frozen=True)
class Sample:
    """One matched detection: its refiner input (float16 to halve the memory) and the true mask."""

    inputs: np.ndarray  # (3, h, w) float16
    target: np.ndarray  # (h, w) bool
    pasted_iou: float  # the pasted mask's IoU with the true one


def detection_windows(segmenter: Any, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """The segmenter's levelled frame, boxes, scores and pasted windows, as its runtime makes them (one view)."""
    frame = segmenter.model_input(image)
    boxes, scores, probs = segmenter.detect(frame)
    boxes = boxes.reshape(-1, 4)
    return frame, boxes, scores, pasted_windows(probs, boxes, frame.shape)


def matches(mask_iou: np.ndarray, box_iou: np.ndarray, confident: np.ndarray) -> list[tuple[int, int]]:
    """(detection, true wire) pairs: by mask IoU >= ``MATCH_IOU`` first, then a confident detection whose box
    finds a wire (IoU >= ``MATCH_BOX_IOU``) that its mask misses, the case the axis prior is there for."""
    by_box = np.where((box_iou >= MATCH_BOX_IOU) & confident[:, None], box_iou, 0.0)
    combined = np.where(mask_iou >= MATCH_IOU, 1.0 + mask_iou, by_box)
    return [(j, t) for j, t, _ in greedy_pairs(combined, MATCH_IOU)]


def extract(segmenter: Any, folder: CocoFolder, images: int, progress: bool = True) -> list[Sample]:
    """Samples from the first ``images`` images of ``folder``: each detection matched to a true wire
    (``matches``)."""
    from rich.progress import track

    samples: list[Sample] = []
    n = min(images, len(folder))
    for i in track(range(n), description=f"refiner samples from {folder.root.name}", disable=not progress):
        sample = folder.load(i)
        frame, boxes, scores, windows = detection_windows(segmenter, sample.image)
        items = refinement_inputs(frame, windows, boxes, scores, segmenter.mask_threshold)
        kept = [k for k, item in enumerate(items) if item is not None]
        if not kept or len(sample.masks) == 0:
            continue
        truth = sample.masks.reshape(len(sample.masks), -1)
        pred = window_masks([windows[k] for k in kept], frame.shape, segmenter.mask_threshold).reshape(len(kept), -1)
        inter = pred.astype(np.float32) @ truth.T.astype(np.float32)
        union = pred.sum(1)[:, None] + truth.sum(1)[None, :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        box_iou = pairwise_box_iou(boxes[kept], boxes_of(sample.masks))
        for j, t in matches(iou, box_iou, scores[kept] >= OTHER_SCORE):
            rows, cols, inputs = items[kept[j]]  # type: ignore[misc]
            samples.append(Sample(inputs.astype(np.float16), sample.masks[t][rows, cols].copy(), float(iou[j, t])))
    return samples


def random_batch(samples: list[Sample], rng: np.random.Generator, size: int = BATCH,
                 crop: int = CROP) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, targets and valid-pixel weights of ``size`` random crops (zero-padded where a sample is smaller),
    each turned by a random one of the square's eight symmetries."""
    z = np.zeros((size, INPUT_CHANNELS, crop, crop), np.float32)
    t = np.zeros((size, 1, crop, crop), np.float32)
    valid = np.zeros_like(t)
    for b in range(size):
        s = samples[int(rng.integers(len(samples)))]
        h, w = s.target.shape
        y0, x0 = int(rng.integers(max(h - crop, 0) + 1)), int(rng.integers(max(w - crop, 0) + 1))
        inp, tgt = s.inputs[:, y0:y0 + crop, x0:x0 + crop], s.target[y0:y0 + crop, x0:x0 + crop]
        turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        inp, tgt = np.rot90(inp, turns, (1, 2)), np.rot90(tgt, turns)
        if flip:
            inp, tgt = inp[:, :, ::-1], tgt[:, ::-1]
        hh, ww = tgt.shape
        z[b, :, :hh, :ww] = inp
        t[b, 0, :hh, :ww] = tgt
        valid[b, 0, :hh, :ww] = 1.0
    return torch.from_numpy(z), torch.from_numpy(t), torch.from_numpy(valid)


def batch_loss(net: RefinerNet, z: torch.Tensor, t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    per_pixel = F.binary_cross_entropy_with_logits(net(z), t, reduction="none")
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1.0)


def refine_iou(net: RefinerNet, samples: list[Sample]) -> tuple[float, float]:
    """Mean mask IoU of ``samples`` as pasted and as refined (whole rectangles, threshold 0.5)."""
    pasted: list[float] = []
    refined: list[float] = []
    net.eval()
    with torch.no_grad():
        for s in samples:
            prob = torch.sigmoid(net(torch.from_numpy(s.inputs.astype(np.float32))[None]))[0, 0].numpy()
            for masks, out in (((s.inputs[1] >= 0.5), pasted), ((prob >= 0.5), refined)):
                union = np.count_nonzero(masks | s.target)
                out.append(np.count_nonzero(masks & s.target) / union if union else 1.0)
    net.train()
    return float(np.mean(pasted)), float(np.mean(refined))


def widened(net: RefinerNet, state: dict[str, torch.Tensor]) -> RefinerNet:
    """``net`` (``channels`` wide) computing exactly what the narrower (or equal) refiner ``state`` computes.

    Each of ``state``'s weights goes into the corner of the wider one (an older refiner with fewer inputs, too);
    the new channels keep their random input weights but nothing reads them yet (their weights into the old
    channels and into the output are zero), so training continues from the old refiner's answer and lets the new channels grow from there."""
    new = net.state_dict()
    for name, old in state.items():
        fits = name in new and old.dim() == new[name].dim()
        if not fits or any(a > b for a, b in zip(old.shape, new[name].shape, strict=True)):
            raise InputError(f"--init: {name} of shape {tuple(old.shape)} does not fit this refiner "
                             f"({tuple(new[name].shape) if name in new else 'absent'}; same dilations, --channels >= its)")
        target = new[name]
        if target.dim() == 4:  # no path from a new channel (or input) into an old channel ...
            target[:old.shape[0], old.shape[1]:] = 0.0
        if name.startswith("out."):  # ... or into the output
            target.zero_()
        target[tuple(slice(0, n) for n in old.shape)] = old
    missing = set(new) - set(state)
    if missing:
        raise InputError(f"--init: the refiner checkpoint lacks {sorted(missing)}")
    net.load_state_dict(new)
    return net


def train(samples: list[Sample], out: Path, seconds: float, seed: int = 0, resume: bool = False,
          progress: bool = True, channels: int = 16, init: Path | None = None,
          peak_lr: float = PEAK_LR) -> RefinerNet:
    """Train on ``samples`` for ``seconds`` of training time (cosine decay over it); checkpoints in ``out``.

    ``init``: a refiner run's ``last.pt`` to start from (``widened`` when ``channels`` is larger)."""
    from rich.progress import Progress

    if not samples:
        raise InputError("no refiner samples: no detection matched a true wire (is the model trained for this data?)")
    torch.manual_seed(seed)
    net = RefinerNet(channels)
    if init is not None and not resume:
        net = widened(net, torch.load(init, weights_only=False)["net"])
        log.info("refiner starts from %s, %d channels wide", init, channels)
    opt = torch.optim.AdamW(net.parameters(), lr=peak_lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    step, spent = 0, 0.0
    last = out / "last.pt"
    if resume:
        state = torch.load(last, weights_only=False)
        if state["net"]["inp.weight"].shape[0] != channels:
            raise InputError(f"--resume: {last} is {state['net']['inp.weight'].shape[0]} channels wide, "
                             f"not --channels {channels}")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        step, spent = int(state["step"]), float(state["spent"])
        log.info("resumed the refiner at step %d (%.0f of %.0f s)", step, spent, seconds)
    metrics = (out / "metrics.csv").open("a" if resume else "w", newline="")
    writer = csv.writer(metrics)
    if not resume:
        writer.writerow(["step", "seconds", "lr", "loss"])
    ema = None
    with Progress(disable=not progress) as bar:
        task = bar.add_task("refiner", total=seconds, completed=int(spent))
        while spent < seconds:
            t0 = time.perf_counter()
            lr = peak_lr * 0.5 * (1 + math.cos(math.pi * min(spent / seconds, 1.0)))
            for group in opt.param_groups:
                group["lr"] = lr
            loss = batch_loss(net, *random_batch(samples, rng))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
            spent += time.perf_counter() - t0
            bar.update(task, completed=min(spent, seconds), description=f"refiner step {step} loss {ema:.4f}")
            if step % CHECKPOINT_EVERY == 0 or spent >= seconds:
                writer.writerow([step, round(spent, 1), f"{lr:.6g}", f"{ema:.5f}"])
                metrics.flush()
                torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "rng": rng.bit_generator.state,
                            "step": step, "spent": spent}, last)
    metrics.close()
    return net


def export(net: RefinerNet, path: Path, metadata: dict[str, str]) -> None:
    """The net with its sigmoid as ONNX (one (1, 3, H, W) input of any size), ``metadata`` embedded."""
    import onnx

    net = net.eval()
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(_Probabilities(net), (torch.zeros(1, INPUT_CHANNELS, 64, 48),), str(tmp), opset_version=17,
                          dynamo=False, input_names=["refiner_input"], output_names=["refined_probs"],
                          dynamic_axes={"refiner_input": {2: "height", 3: "width"},
                                        "refined_probs": {2: "height", 3: "width"}})
    proto = onnx.load(str(tmp))
    tmp.unlink()
    del proto.metadata_props[:]
    for key, value in {"format": FORMAT, **metadata}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(path))


def extra_folder(text: str) -> tuple[Path, int]:
    """``DIR:IMAGES`` of ``--extra-data`` as (folder, image count)."""
    folder, sep, count = text.rpartition(":")
    if not sep or not folder or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not DIR:IMAGES with IMAGES a positive whole number")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{folder} is not a folder")
    return Path(folder), int(count)


def main(argv: list[str] | None = None) -> None:
    from wirewatch.segment import load_segmenter
    from wirewatch.segment.model_files import resolve_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="synth folder with train and val splits")
    parser.add_argument("--model", default="default", help="the ONNX model whose masks the refiner corrects")
    parser.add_argument("--images", type=int, default=900, help="training images to take samples from")
    parser.add_argument("--extra-data", action="append", default=[], type=extra_folder, metavar="DIR:IMAGES",
                        help="another synth folder and how many of its training images to add samples from "
                             "(repeatable), e.g. other presets so the refiner learns their contrast too")
    parser.add_argument("--val-images", type=int, default=30, help="val images for the IoU check at the end")
    parser.add_argument("--time-budget", type=float, default=1800.0, help="training seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, default=16, help="the net's width")
    parser.add_argument("--init", type=Path, help="start from this refiner run's last.pt (widened to --channels)")
    parser.add_argument("--peak-lr", type=float, default=PEAK_LR, help="AdamW learning rate before the decay")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.time_budget <= 0 or args.images < 1:
        parser.error("--time-budget and --images must be positive")
    if args.init is not None and not args.init.is_file():
        parser.error(f"--init: {args.init} does not exist")
    if args.resume and not (args.out / "last.pt").is_file():
        parser.error(f"--resume: {args.out / 'last.pt'} does not exist")
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    progress = not args.no_progress
    # score threshold 0.05: low-score detections' masks are ranked in mask AP too, so the refiner sees them
    segmenter = load_segmenter("onnxruntime", model=args.model, score_threshold=0.05, mask_refine="none")
    folders = [(args.data, args.images), *args.extra_data]
    samples: list[Sample] = []
    for folder, images in folders:
        found = extract(segmenter, CocoFolder(folder, "train"), images, progress)
        log.info("%d refiner samples from %d training images of %s", len(found), images, folder)
        samples += found
    net = train(samples, args.out, args.time_budget, args.seed, args.resume, progress, args.channels, args.init,
                args.peak_lr)
    del samples
    per_folder: dict[str, dict[str, Any]] = {}
    for folder, _ in folders:
        val = extract(segmenter, CocoFolder(folder, "val"), args.val_images, progress)
        pasted, refined = (round(iou, 4) for iou in refine_iou(net, val)) if val else (None, None)
        per_folder[str(folder)] = {"detections": len(val), "pasted": pasted, "refined": refined}
        log.info("%s val mean mask IoU over %d detections: pasted %s, refined %s", folder, len(val), pasted, refined)
    main_val = per_folder[str(args.data)]
    model_path = resolve_model_path(args.model)
    summary = {"trained_for_model": model_path.name, TRAINED_FOR: file_sha256(model_path),
               "data": str(args.data), "train_images": args.images, "seed": args.seed,
               "channels": args.channels, "init": str(args.init) if args.init else None, "peak_lr": args.peak_lr,
               "extra_data": {str(folder): images for folder, images in args.extra_data},
               "time_budget_s": args.time_budget, "val_detections": main_val["detections"],
               "val_mean_iou_pasted": main_val["pasted"], "val_mean_iou_refined": main_val["refined"],
               "val_by_folder": per_folder}
    export(net, args.out / "refiner.onnx", {k: json.dumps(v) if not isinstance(v, str) else v
                                            for k, v in summary.items()})
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
