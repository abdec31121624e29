"""Training configuration (``config/train-*.yaml``, CLI flags on top)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from wirewatch.config.base import StrictModel
from wirewatch.train.data import Augmentation

# torchvision's Mask R-CNN loss terms, in the order they are logged.
LOSS_TERMS = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


class AugmentationConfig(StrictModel):
    """Paper's augmentation on by default; noise/blur/inversion for the extended presets."""

    brightness: tuple[float, float] = (0.7, 1.2)
    contrast: tuple[float, float] = (0.7, 1.2)
    flip_p: float = Field(default=0.5, ge=0, le=1)
    rot90: bool = True
    noise_sigma_max: float = Field(default=0.0, ge=0)
    blur_sigma_max: float = Field(default=0.0, ge=0)
    invert_p: float = Field(default=0.0, ge=0, le=1)

    def build(self) -> Augmentation:
        return Augmentation(**self.model_dump())


class ExtraData(StrictModel):
    """Another ``wirewatch synth`` folder mixed into training (validation stays on ``data``)."""

    path: str
    fraction: float = Field(gt=0, lt=1, description="share of training samples drawn from this folder")


class TrainConfig(StrictModel):
    """Everything that defines a training run; stored in the run folder and in every checkpoint."""

    data: str
    out: str
    extra_data: list[ExtraData] = Field(
        default_factory=list, description="further synth folders (e.g. other presets) drawn from with the "
        "given fractions; `data` gets the rest and alone provides the validation images")
    variant: Literal["compact", "compact_m4", "compact56", "compact56i", "r50_fpn"] = "compact"
    init: str | None = None
    steps: int = Field(default=1500, gt=0, description="planned optimiser steps; the cosine decay ends here")
    time_budget_s: float | None = Field(
        None, gt=0, description="if set, the schedule follows elapsed time instead and ends at this budget")
    batch_size: int = Field(default=4, gt=0)
    crop_size: int = Field(default=256, ge=32)
    min_instance_area_px: int = Field(default=16, ge=1)
    lr: float = Field(default=0.02, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_steps: int = Field(default=200, ge=0)
    grad_clip: float = Field(default=10.0, gt=0)
    seed: int = 0
    threads: int = Field(default=2, gt=0)
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$",
                        description="where the model trains: cpu, cuda or cuda:N (a GPU is used only when asked for)")
    loader_workers: int = Field(
        default=0, ge=0, description="processes that crop and augment training samples ahead of the "
        "optimiser (wirewatch.train.loader); 0: the training process makes them itself, sequence exactly "
        "resumable. Use several when a GPU trains faster than one core crops")
    log_every: int = Field(default=10, gt=0)
    checkpoint_every: int = Field(default=50, gt=0)
    val_every: int = Field(default=250, gt=0)
    val_images: int = Field(default=40, ge=0)
    detections_per_image: int = Field(default=200, gt=0)
    precise_bn_batches: int = Field(
        default=50, ge=0, description="training batches over which BatchNorm statistics are re-estimated "
        "before each validation and the final checkpoint (0: keep the moving averages)")
    train_only: list[str] = Field(
        default_factory=list, description="parameter-name prefixes to train (e.g. roi_heads.mask_head); "
        "everything else is frozen, its BatchNorm statistics included (empty: train everything)")
    loss_weights: dict[str, float] = Field(
        default_factory=dict, description="multiplier per torchvision loss term (e.g. loss_mask: 2.0) in the "
        "optimised sum; terms not named weigh 1. The logged terms stay unweighted, the logged total is weighted")
    mask_dice_weight: float = Field(
        default=0.0, ge=0, description="adds this times a soft Dice loss per RoI to loss_mask's BCE "
        "(wirewatch.train.mask_loss; 0: torchvision's loss unchanged); loss_weights.loss_mask scales the sum, "
        "and metrics.csv's loss_mask logs the sum")
    augmentation: AugmentationConfig = Field(default_factory=lambda: AugmentationConfig())
    schedule: Literal["cosine"] = "cosine"

    @field_validator("loss_weights")
    @classmethod
    def _known_loss_terms(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"unknown loss terms {unknown}; allowed: {list(LOSS_TERMS)}")
        negative = sorted(k for k, w in weights.items() if not w >= 0)
        if negative:
            raise ValueError(f"loss weights must be >= 0, got {[(k, weights[k]) for k in negative]}")
        return weights

    @model_validator(mode="after")
    def _main_data_keeps_a_share(self) -> TrainConfig:
        if sum(e.fraction for e in self.extra_data) >= 1.0:
            raise ValueError(f"extra_data fractions sum to {sum(e.fraction for e in self.extra_data):g}; "
                             "they must leave `data` a share (sum < 1)")
        return self

    def training_parts(self) -> list[tuple[str, float]]:
        """(folder, fraction) of every training source, ``data`` first."""
        rest = 1.0 - sum(e.fraction for e in self.extra_data)
        return [(self.data, rest)] + [(e.path, e.fraction) for e in self.extra_data]
