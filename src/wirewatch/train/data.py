"""Training samples from a synthesiser COCO folder: random native-scale crops and augmentation.

All randomness comes from one ``numpy.random.Generator`` owned by the training loop, so a
checkpoint that stores its state resumes with exactly the same sample sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wirewatch.coco import boxes_of, decode_mask
from wirewatch.errors import InputError


@dataclass(frozen=True)
class Sample:
    """One training/validation image and its instances (native pixels)."""

    image: np.ndarray  # (H, W) float32 0..1
    masks: np.ndarray  # (N, H, W) bool
    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1 (pixel edges)


@dataclass(frozen=True)
class Augmentation:
    """The paper's augmentation plus options for the extended presets (off by default)."""

    brightness: tuple[float, float] = (0.7, 1.2)
    contrast: tuple[float, float] = (0.7, 1.2)
    flip_p: float = 0.5
    rot90: bool = True
    noise_sigma_max: float = 0.0
    blur_sigma_max: float = 0.0
    invert_p: float = 0.0


class CocoFolder:
    """A ``wirewatch synth`` output folder (``images/`` + ``train.json`` / ``val.json``)."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        ann_path = self.root / f"{split}.json"
        if not ann_path.is_file():
            alt = self.root / "all.json"
            if split == "train" and alt.is_file():
                ann_path = alt
            else:
                raise InputError(f"{self.root} has no {split}.json (is it a `wirewatch synth --out` folder?)")
        try:
            self.coco: dict[str, Any] = json.loads(ann_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read COCO file {ann_path}: {exc}") from None
        self.split = split
        self.images: list[dict[str, Any]] = sorted(self.coco.get("images", []), key=lambda im: im["id"])
        if not self.images:
            raise InputError(f"{ann_path} lists no images")
        self._anns: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in self.images}
        for ann in self.coco.get("annotations", []):
            self._anns.setdefault(ann["image_id"], []).append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        info = self.images[index]
        path = self.root / "images" / info["file_name"]
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise InputError(f"cannot read image {path}")
        if raw.ndim == 3:
            raw = raw[..., 0]
        scale = 65535.0 if raw.dtype == np.uint16 else 255.0
        image = raw.astype(np.float32) / np.float32(scale)
        h, w = image.shape
        anns = [a for a in self._anns.get(info["id"], []) if not a.get("iscrowd", 0)]
        masks = np.zeros((len(anns), h, w), bool)
        for i, ann in enumerate(anns):
            masks[i] = decode_mask(ann["segmentation"], h, w)
        return Sample(image, masks, boxes_of(masks))

    def image_ids(self) -> list[int]:
        return [int(im["id"]) for im in self.images]

    def draw(self, rng: np.random.Generator) -> Sample:
        """A uniformly random image of this folder."""
        return self.load(int(rng.integers(0, len(self))))


class FolderMix:
    """Training folders drawn from in fixed proportions: the run's ``data`` plus ``extra_data``.

    With one folder ``draw`` is exactly ``CocoFolder.draw`` (same random numbers), so runs without
    extra data keep their sample sequence.
    """

    def __init__(self, folders: list[CocoFolder], fractions: list[float]) -> None:
        if len(folders) != len(fractions) or not folders:
            raise InputError("a training mix needs one fraction per folder")
        total = float(sum(fractions))
        if not all(f > 0 for f in fractions) or abs(total - 1.0) > 1e-6:
            raise InputError(f"training mix fractions must be > 0 and sum to 1, got {fractions}")
        self.folders = folders
        self.fractions = np.asarray(fractions, float) / total

    @classmethod
    def open(cls, parts: list[tuple[str, float]], split: str = "train") -> FolderMix:
        return cls([CocoFolder(root, split) for root, _ in parts], [f for _, f in parts])

    def __len__(self) -> int:
        return sum(len(f) for f in self.folders)

    def draw(self, rng: np.random.Generator) -> Sample:
        if len(self.folders) == 1:
            return self.folders[0].draw(rng)
        part = int(rng.choice(len(self.folders), p=self.fractions))
        return self.folders[part].draw(rng)


def random_crop(sample: Sample, size: int, rng: np.random.Generator, min_area_px: int = 16) -> Sample:
    """A random ``size`` x ``size`` crop; instances left with fewer than ``min_area_px`` pixels are dropped."""
    h, w = sample.image.shape
    if h < size or w < size:
        raise InputError(f"training image {h}x{w} is smaller than the crop size {size}")
    y0 = int(rng.integers(0, h - size + 1))
    x0 = int(rng.integers(0, w - size + 1))
    image = sample.image[y0:y0 + size, x0:x0 + size]
    masks = sample.masks[:, y0:y0 + size, x0:x0 + size]
    keep = masks.reshape(len(masks), -1).sum(axis=1) >= min_area_px
    masks = masks[keep]
    return Sample(np.ascontiguousarray(image), np.ascontiguousarray(masks), boxes_of(masks))


def augment(sample: Sample, aug: Augmentation, rng: np.random.Generator) -> Sample:
    """Photometric and geometric augmentation; geometry applied to masks identically."""
    image, masks = sample.image, sample.masks
    # Draw every random number unconditionally so the RNG sequence does not depend on options.
    contrast = rng.uniform(*aug.contrast)
    brightness = rng.uniform(*aug.brightness)
    flip_h, flip_v = rng.random() < aug.flip_p, rng.random() < aug.flip_p
    k_rot = int(rng.integers(0, 4))
    noise_sigma = rng.uniform(0.0, aug.noise_sigma_max)
    blur_sigma = rng.uniform(0.0, aug.blur_sigma_max)
    invert = rng.random() < aug.invert_p
    noise_seed = int(rng.integers(0, 2**31))

    mean = float(image.mean())
    image = ((image - mean) * contrast + mean) * brightness
    if blur_sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    if noise_sigma > 0:
        image = image + np.random.default_rng(noise_seed).normal(0, noise_sigma, image.shape).astype(np.float32)
    if invert:
        image = 1.0 - image
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    if flip_h:
        image, masks = image[:, ::-1], masks[:, :, ::-1]
    if flip_v:
        image, masks = image[::-1], masks[:, ::-1]
    if aug.rot90 and k_rot:
        image, masks = np.rot90(image, k_rot), np.rot90(masks, k_rot, axes=(1, 2))
    masks = np.ascontiguousarray(masks)
    return Sample(np.ascontiguousarray(image), masks, boxes_of(masks))


def draw_sample(folder: CocoFolder | FolderMix, rng: np.random.Generator, crop_size: int, min_area_px: int,
                aug: Augmentation) -> Sample:
    """One training sample: a random image of ``folder``, a random crop of it, augmented; all drawn from ``rng``."""
    sample = random_crop(folder.draw(rng), crop_size, rng, min_area_px)
    return augment(sample, aug, rng)
