"""A mask branch that also reads the frame's own pixels (variant ``compact56i``).

A nanowire 7-15 px wide needs its mask edges within about half a pixel for a mask IoU above 0.9, finer
than the stride-4 FPN features resolve. So the mask RoI pooler also crops the (normalised) input frame
on the mask grid itself (56 x 56, the same cells as the training targets: ``roi_align``, ``aligned=False``)
and folds it into 4 channels at 28 x 28 (``pixel_unshuffle``), next to the FPN features: the head sees
every grid cell's intensity. The frame travels to the pooler inside the backbone's feature dict
(``IMAGE_KEY``); the RPN ignores that entry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import MultiScaleRoIAlign, roi_align

IMAGE_KEY = "image"
IMAGE_CHANNELS = 4  # one grey channel at twice the pooled grid, folded 2 x 2 into channels


class BackboneWithFPNAndImage(BackboneWithFPN):
    """``BackboneWithFPN`` (same weights, same names) whose feature dict also carries its input."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        features = dict(super().forward(x))
        features[IMAGE_KEY] = x
        return features


class RegionProposalNetworkWithoutImage(RegionProposalNetwork):
    """The RPN over the FPN levels only (its anchors are per level; the frame is not one)."""

    def forward(self, images, features, targets=None):  # type: ignore[no-untyped-def, override]
        return super().forward(images, {k: v for k, v in features.items() if k != IMAGE_KEY}, targets)


class ImageGuidedMaskPool(nn.Module):
    """FPN features pooled on ``size`` x ``size`` RoI grids, plus the frame on the ``2 * size`` mask grid."""

    def __init__(self, featmap_names: list[str], size: int, sampling_ratio: int = 2) -> None:
        super().__init__()
        self.features = MultiScaleRoIAlign(featmap_names, size, sampling_ratio)
        self.size = size
        self.sampling_ratio = sampling_ratio

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        pooled = self.features(x, boxes, image_shapes)
        frame = x[IMAGE_KEY][:, :1]  # the grey frame (three equal channels unless the stem was folded)
        crops = roi_align(frame, boxes, (2 * self.size, 2 * self.size), 1.0, self.sampling_ratio, aligned=False)
        return torch.cat([pooled, F.pixel_unshuffle(crops, 2)], dim=1)


def make_image_guided(model: nn.Module, fpn_levels: list[str], size: int) -> None:
    """Turn a freshly built Mask R-CNN (compact-style backbone) into the image-guided variant, in place."""
    m: torch.nn.Module = model
    m.backbone.__class__ = BackboneWithFPNAndImage  # type: ignore[assignment]
    m.rpn.__class__ = RegionProposalNetworkWithoutImage  # type: ignore[assignment]
    m.roi_heads.mask_roi_pool = ImageGuidedMaskPool(fpn_levels, size)  # type: ignore[union-attr]
