"""Mask R-CNN variants (torchvision) sized for thin nanowires, and weight loading.

Both variants keep images at native pixel scale (``NativeScaleTransform``):
training crops and full inference frames are never rescaled, so a wire's width
in pixels is the same in training and at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models import resnet18, resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from wirewatch.errors import InputError, ModelError
from wirewatch.train.image_guided import IMAGE_CHANNELS, make_image_guided

CLASS_NAMES = ("background", "nanowire")
# Grey input replicated to 3 channels; one mean/std for all three (kept in the ONNX metadata).
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.25, 0.25, 0.25)
# One anchor size per FPN level (native-scale wires are 2-30 px wide, 20-300 px long);
# elongated aspect ratios for long thin wires.
ANCHOR_SIZES = ((16,), (32,), (64,), (128,), (256,))
ASPECT_RATIOS = ((0.25, 0.5, 1.0, 2.0, 4.0),) * len(ANCHOR_SIZES)


class NativeScaleTransform(GeneralizedRCNNTransform):
    """torchvision's transform without the resize: normalise and batch (pad to /32) only."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor] | None]:
        return image, target


@dataclass(frozen=True)
class VariantSpec:
    """The knobs that distinguish the variants (all else is shared)."""

    backbone: str
    fpn_channels: int
    box_head_dim: int
    mask_head_layers: tuple[int, ...]
    roi_batch_per_image: int
    rpn_batch_per_image: int
    # Mask branch: RoIAlign grid (the head doubles it: 14 -> 28 x 28 masks) and the FPN levels it reads.
    mask_pool: int = 14
    mask_levels: tuple[str, ...] = ("0", "1", "2", "3")
    mask_reads_image: bool = False  # the mask head also sees the frame on its grid (wirewatch.train.image_guided)


VARIANTS: dict[str, VariantSpec] = {
    # CPU-friendly: measured ~1.8 s per batch-4 step of 256 px crops on an idle 2-core CPU.
    "compact": VariantSpec("resnet18", 128, 256, (128, 128), 128, 128),
    # compact with a finer mask branch for thin wires: every RoI read from the stride-4 level (FPN's
    # size-based level choice sends a long diagonal wire's big box to stride 16, coarser than the
    # wire is wide) on a 28 x 28 grid, so masks come out 56 x 56; slimmer head channels pay for part
    # of it (~2.5 instead of ~1.5 s per training step). With ground-truth boxes the compact head reached
    # mask AP 0.48 on 30 fresh frames, where its 28 x 28 targets pasted back score 0.995: the head, not
    # the grid size, is the limit. Trained on the shipped detector's frozen features it has not beaten
    # the compact head yet (docs/model.md, "Variants").
    "compact56": VariantSpec("resnet18", 128, 256, (64, 64, 64), 128, 128, mask_pool=28, mask_levels=("0",)),
    # compact56 whose mask head also reads the frame's pixels on the 56 x 56 mask grid: sub-pixel edges.
    "compact56i": VariantSpec("resnet18", 128, 256, (64, 64, 64), 128, 128, mask_pool=28, mask_levels=("0",),
                              mask_reads_image=True),
    # compact with torchvision's mask-head depth (4 convs instead of 2): more context per RoI. Where the
    # compact head's masks fail, they fail at crossings: on 30 val frames, 99 % of its detections with mask
    # IoU 0.5-0.7 overlap another wire (a quarter of their area) and 73 % of their false-positive pixels lie
    # on it (docs/model.md, "Where the mask AP goes"). Grown from a compact checkpoint, the new convs start
    # as identities, so training starts from the compact model's function.
    "compact_m4": VariantSpec("resnet18", 128, 256, (128, 128, 128, 128), 128, 128),
    # The paper's ResNet-50-FPN with torchvision's default head sizes.
    "r50_fpn": VariantSpec("resnet50", 256, 1024, (256, 256, 256, 256), 512, 256),
}

_BACKBONES: dict[str, Callable[..., nn.Module]] = {"resnet18": resnet18, "resnet50": resnet50}


def build_model(variant: str = "compact", num_classes: int = len(CLASS_NAMES),
                detections_per_image: int = 200, score_threshold: float = 0.05) -> MaskRCNN:
    """A randomly initialised Mask R-CNN of the named variant with trainable BatchNorm."""
    try:
        spec = VARIANTS[variant]
    except KeyError:
        raise InputError(f"unknown model variant {variant!r}; allowed: {', '.join(sorted(VARIANTS))}") from None
    # Trainable BatchNorm: from random init, frozen BN would mean no normalisation at all,
    # and GroupNorm is several times slower on CPU.
    body = _BACKBONES[spec.backbone](weights=None, norm_layer=nn.BatchNorm2d)
    in_channels_list = [_stage_out_channels(getattr(body, f"layer{i}")) for i in range(1, 5)]
    backbone = BackboneWithFPN(body, return_layers={f"layer{i}": str(i - 1) for i in range(1, 5)},
                               in_channels_list=in_channels_list, out_channels=spec.fpn_channels)
    c = spec.fpn_channels
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=512, max_size=4096,  # unused: NativeScaleTransform replaces the resize
        image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD),
        rpn_anchor_generator=AnchorGenerator(ANCHOR_SIZES, ASPECT_RATIOS),
        rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_test=300,
        rpn_batch_size_per_image=spec.rpn_batch_per_image,
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2),
        box_head=TwoMLPHead(c * 7 * 7, spec.box_head_dim),
        box_predictor=FastRCNNPredictor(spec.box_head_dim, num_classes),
        box_batch_size_per_image=spec.roi_batch_per_image,
        box_detections_per_img=detections_per_image,
        box_score_thresh=score_threshold,
        mask_roi_pool=MultiScaleRoIAlign(list(spec.mask_levels), spec.mask_pool, 2),
        mask_head=MaskRCNNHeads(c + (IMAGE_CHANNELS if spec.mask_reads_image else 0), list(spec.mask_head_layers), 1),
        mask_predictor=MaskRCNNPredictor(spec.mask_head_layers[-1], spec.mask_head_layers[-1], num_classes),
    )
    model.transform = NativeScaleTransform(512, 4096, list(IMAGE_MEAN), list(IMAGE_STD))
    if spec.mask_reads_image:
        make_image_guided(model, list(spec.mask_levels), spec.mask_pool)
    return model


def mask_size(variant: str) -> int:
    """Side of the variant's mask probability grid (the mask predictor's transposed conv doubles the RoI grid)."""
    return 2 * VARIANTS[variant].mask_pool


def _stage_out_channels(stage: nn.Module) -> int:
    last_block = list(stage.children())[-1]
    last_conv = [m for m in last_block.modules() if isinstance(m, nn.Conv2d)][-1]
    return int(last_conv.out_channels)


def grey_to_model_input(image: Tensor) -> Tensor:
    """(H, W) float 0..1 -> (3, H, W), the channel layout every variant (and COCO weights) expects."""
    return image.unsqueeze(0).expand(3, -1, -1)


@dataclass(frozen=True)
class InitReport:
    """What ``load_init_weights`` did, for the training log."""

    loaded: int
    skipped_shape: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    widened: tuple[str, ...] = ()  # conv weights loaded into more input channels (the new ones zero)
    deepened: tuple[str, ...] = ()  # mask-head convs the file lacks, started as identities (compact -> compact_m4)

    def summary(self) -> str:
        return (f"loaded {self.loaded} tensors ({len(self.widened)} widened with zero-weight inputs, "
                f"{len(self.deepened)} mask-head convs added as identities); skipped {len(self.skipped_shape)} with mismatched shapes "
                f"({', '.join(self.skipped_shape[:6])}{'...' if len(self.skipped_shape) > 6 else ''}); "
                f"{len(self.missing)} model tensors left at init; {len(self.unexpected)} file tensors unused")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Weights from a wirewatch checkpoint (``model`` key) or a plain state dict (e.g. torchvision COCO)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights file not found: {p}")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {p}: {exc}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelError(f"{p} holds no state dict (expected tensors by name, or a checkpoint with 'model')")
    return obj


def load_init_weights(model: nn.Module, path: str | Path) -> InitReport:
    """Load every tensor whose name and shape match; class-count-dependent heads are skipped.

    ``path`` may also be an exported ONNX model of the same variant (``wirewatch.train.recover``):
    the way back when a training checkpoint is lost; recalibrate its BatchNorm before training.
    """
    from wirewatch.train.recover import is_onnx_file, state_dict_from_onnx

    source = state_dict_from_onnx(path, model) if is_onnx_file(path) else read_state_dict(path)
    target = model.state_dict()
    usable: dict[str, Tensor] = {}
    skipped: list[str] = []
    widened: list[str] = []
    for name, tensor in source.items():
        if name in target:
            if target[name].shape == tensor.shape:
                usable[name] = tensor
            elif _is_widened_input(tensor, target[name]):
                # A conv that gained input channels (compact56 -> compact56i): the new inputs start at zero
                # weight, so the layer computes what it computed before and learns to use them.
                grown = torch.zeros_like(target[name])
                grown[:, : tensor.shape[1]] = tensor
                usable[name] = grown
                widened.append(name)
            else:
                skipped.append(name)
    if not usable:
        raise ModelError(f"no tensor in {path} matches this model (wrong variant?)")
    deepened = _identity_mask_convs(target, usable)
    result = model.load_state_dict(usable, strict=False)
    unexpected = tuple(n for n in source if n not in target)
    return InitReport(loaded=len(usable) - 2 * len(deepened), skipped_shape=tuple(skipped),
                      missing=tuple(result.missing_keys), unexpected=unexpected, widened=tuple(widened),
                      deepened=tuple(deepened))


_MASK_CONV = re.compile(r"roi_heads\.mask_head\.(\d+)\.0\.weight")


def _identity_mask_convs(target: dict[str, Tensor], usable: dict[str, Tensor]) -> list[str]:
    """Add to ``usable`` an identity kernel (and zero bias) for each mask-head conv the file lacks that
    follows a loaded one with as many channels in as out; returns their weight names.

    Each mask-head conv is followed by a ReLU, so its input is non-negative and an identity conv + ReLU
    passes it through unchanged: a deeper head grown this way computes what the shallower one did.
    """
    added: list[str] = []
    layers = sorted((int(m.group(1)), name) for name in target if (m := _MASK_CONV.fullmatch(name)))
    for k, name in layers:
        previous = f"roi_heads.mask_head.{k - 1}.0.weight"
        weight = target[name]
        if (name in usable or k == 0 or previous not in usable or weight.shape[0] != weight.shape[1]
                or weight.shape[2] % 2 == 0):
            continue
        identity = torch.zeros_like(weight)
        torch.nn.init.dirac_(identity)
        usable[name] = identity
        usable[name[: -len("weight")] + "bias"] = torch.zeros_like(target[name[: -len("weight")] + "bias"])
        added.append(name)
    return added


def _is_widened_input(source: Tensor, target: Tensor) -> bool:
    """A conv weight (out, in, k, k) whose target has the same shape but more input channels."""
    return (source.ndim == 4 and target.ndim == 4 and source.shape[0] == target.shape[0]
            and source.shape[2:] == target.shape[2:] and source.shape[1] < target.shape[1])
