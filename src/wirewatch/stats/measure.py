"""``measure``: instance masks of one frame -> ``FrameStats`` (particle table + aggregates);
``measure_detections``: a segmenter's detections -> the ones at or above a score threshold, measured, each
particle row tied back to its detection (what ``wirewatch segment`` and the web upload both need)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch.stats.aggregates import frame_aggregates
from wirewatch.stats.descriptors import check_pixel_size, particle_descriptors
from wirewatch.stats.tables import particle_rows
from wirewatch.types import Detections, FrameStats


def measure(masks: np.ndarray | Detections, image: np.ndarray | None = None, *,
            pixel_size_nm: float | None = None, frame_id: int = 0, time: float = 0.0) -> FrameStats:
    """Measure every particle of one frame.

    ``masks``: a ``Detections`` (its ``masks`` are used) or an (N, H, W) bool stack of instance
    masks, overlaps allowed. ``image``: the frame (H, W), optional, for the optical-density
    columns. ``pixel_size_nm``: nanometres per pixel, optional, for the physical-unit columns
    and the number density. Empty masks are skipped with a warning and counted in the aggregate
    ``empty_masks_skipped``; ``particles['mask_index']`` maps rows back to the input masks.
    """
    stack = masks.masks if isinstance(masks, Detections) else masks
    pixel_size_nm = check_pixel_size(pixel_size_nm)
    table = particle_descriptors(stack, image, pixel_size_nm)
    return FrameStats(frame_id=frame_id, time=time, aggregates=frame_aggregates(table, pixel_size_nm),
                      particles=table.columns)


@dataclass(frozen=True)
class MeasuredDetections:
    """``measure_detections``' answer. Per-particle arrays are in ``stats.particles`` row order (a kept mask
    that is empty has no row)."""

    stats: FrameStats  # the kept detections measured (``particle_count`` counts only those)
    kept: np.ndarray  # indices into the detections scored at or above the threshold, in detection order
    masks: np.ndarray  # (len(kept), H, W): the kept masks, what an overlay draws
    mask_index: np.ndarray  # per particle row: its mask's index in ``masks``
    detection: np.ndarray  # per particle row: its index in the detections (COCO results keep every one)
    scores: np.ndarray  # per particle row: the detection's score
    mask_scores: np.ndarray  # per particle row: its mask's confidence (the score where the backend gives none)

    def rows(self, **extra: Any) -> list[dict[str, Any]]:
        """One dict per particle: ``extra`` (e.g. image_id), the descriptors, ``score`` and ``mask_score``."""
        table = {k: v for k, v in self.stats.particles.items() if k != "mask_index"}
        rows = particle_rows(table, **extra)
        for row, score, mask_score in zip(rows, self.scores.tolist(), self.mask_scores.tolist(), strict=True):
            row["score"] = float(score)
            row["mask_score"] = float(mask_score)
        return rows


def measure_detections(detections: Detections, image: np.ndarray | None = None, *, score_threshold: float = 0.5,
                       pixel_size_nm: float | None = None, frame_id: int = 0, time: float = 0.0) -> MeasuredDetections:
    """Keep the detections scored at or above ``score_threshold`` and measure them (``measure``)."""
    kept = np.flatnonzero(detections.scores >= score_threshold)
    masks = detections.masks[kept]
    stats = measure(masks, image, pixel_size_nm=pixel_size_nm, frame_id=frame_id, time=time)
    mask_index = np.asarray(stats.particles["mask_index"], np.int64)
    detection = kept[mask_index]
    return MeasuredDetections(stats=stats, kept=kept, masks=masks, mask_index=mask_index, detection=detection,
                              scores=np.asarray(detections.scores, np.float64)[detection],
                              mask_scores=np.asarray(detections.mask_confidence, np.float64)[detection])


def masks_from_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) integer label image (0 = background) -> (N, H, W) bool stack, one mask per label present."""
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    return labels[None, :, :] == ids[:, None, None]
