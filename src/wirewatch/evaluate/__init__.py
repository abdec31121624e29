"""Evaluation against COCO ground truth: pycocotools AP, segmentation accuracy, statistics agreement."""

from wirewatch.evaluate.cocofile import (
    check_ground_truth,
    check_results,
    image_roots,
    masks_by_image,
    read_json,
    resolve_image,
)
from wirewatch.evaluate.metrics import (
    AGREEMENT_DESCRIPTORS,
    PixelCounts,
    distribution_agreement,
    pixel_counts,
)
from wirewatch.evaluate.run import Evaluation, ImageResult, evaluate, segment_ground_truth_images
from wirewatch.evaluate.tables import PARTICLE_HEADER, frame_header, images_from_results, measure_coco

__all__ = [
    "AGREEMENT_DESCRIPTORS",
    "PARTICLE_HEADER",
    "Evaluation",
    "ImageResult",
    "PixelCounts",
    "check_ground_truth",
    "check_results",
    "distribution_agreement",
    "evaluate",
    "frame_header",
    "image_roots",
    "images_from_results",
    "masks_by_image",
    "measure_coco",
    "pixel_counts",
    "read_json",
    "resolve_image",
    "segment_ground_truth_images",
]
