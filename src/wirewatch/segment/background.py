"""Level a frame's background before the model sees it.

The model learnt from frames whose background is exactly zero (the synthesiser's default preset: optical
density of the wires alone). A real frame's background is not: an offset, a gradient across the field, slow
bumps. Shown a background of 20 grey levels with a gradient, the shipped model lost most of its detections
(box / mask AP 0.393 / 0.202 on 30 such frames). ``level`` subtracts the frame's own background estimate: a
morphological opening with a disc wider than any wire (it keeps what is broad and removes the wires), taken
at a quarter of the resolution (~1 ms per 512 px frame) and smoothed; what falls below zero is clipped. The
same frames then score 0.853 / 0.726; the 200 clean evaluation frames 0.854 / 0.735 (as given 0.855 / 0.736);
stxm frames rose from 0.306 / 0.151 to 0.477 / 0.293 (docs/model.md, "Background levelling").
"""

from __future__ import annotations

import cv2
import numpy as np

from wirewatch.errors import InputError

BACKGROUNDS = ("none", "level")
DEFAULT_RADIUS = 24.0  # px at the model's scale: wires are at most ~20 px wide, crossings ~30 px across
_FACTOR = 4  # the opening runs on a frame this many times smaller


def check_background(background: object, radius: object = DEFAULT_RADIUS) -> tuple[str, float]:
    """The ``background`` and ``background_radius`` options, else an error naming the allowed values."""
    if background not in BACKGROUNDS:
        raise InputError(f"background must be one of {', '.join(BACKGROUNDS)} (none: the frame as given; level: "
                         f"subtract the frame's smooth background first), got {background!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 2 <= radius <= 512:
        raise InputError(f"background_radius must be a number of pixels within 2..512 (wider than the widest "
                         f"wire), got {radius!r}")
    return str(background), float(radius)


def estimate_background(image: np.ndarray, radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """The smooth background of a float32 frame: an opening with a disc of ``radius`` px (at a quarter
    of the resolution when the frame is large enough), blurred over the disc's scale."""
    height, width = image.shape
    factor = _FACTOR if min(height, width) >= 16 * _FACTOR and radius >= 2 * _FACTOR else 1
    small = image if factor == 1 else cv2.resize(image, (width // factor, height // factor),
                                                 interpolation=cv2.INTER_AREA)
    r = max(1, round(radius / factor))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, disc, borderType=cv2.BORDER_REPLICATE)
    background = cv2.GaussianBlur(background, (0, 0), r, borderType=cv2.BORDER_REPLICATE)
    if factor != 1:
        background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return background


def level_background(image: np.ndarray, radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """``image`` minus its background estimate, clipped to 0..1 (float32, same shape)."""
    image = np.asarray(image, np.float32)
    levelled = image - estimate_background(image, radius)
    return np.clip(levelled, 0.0, 1.0, out=levelled)


def prepared_input(image: np.ndarray, background: str, radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """What a model backend feeds its model: the frame levelled (``background="level"``) or as given."""
    return level_background(image, radius) if background == "level" else image
