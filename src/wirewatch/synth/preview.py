"""Contact sheet: a grid of samples with every wire's mask outline in its own colour."""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

from wirewatch.synth.config import SynthConfig
from wirewatch.synth.generate import Sample, generate


def _colours(n: int) -> list[tuple[int, int, int]]:
    # Evenly spaced hues with the golden-ratio step: neighbours in the list differ strongly.
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))  # OpenCV wants BGR
    return out


def overlay(sample: Sample, outlines: bool = True) -> np.ndarray:
    """BGR uint8 image of the sample with each mask's outline drawn in a distinct colour."""
    rgb = cv2.cvtColor(sample.image, cv2.COLOR_GRAY2BGR)
    if not outlines:
        return rgb
    for mask, colour in zip(sample.masks, _colours(len(sample.masks)), strict=True):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, colour, 1)
    return rgb


def contact_sheet(samples: list[Sample], columns: int = 3, gap: int = 4) -> np.ndarray:
    """Grid of overlays (BGR uint8), left to right then top to bottom, on a white ground."""
    tiles = [overlay(s) for s in samples]
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * h + (rows + 1) * gap, columns * w + (columns + 1) * gap, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y:y + h, x:x + w] = tile
        cv2.putText(sheet, f"{k:06d}  {len(samples[k].wires)} wires", (x + 6, y + 18), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 255, 255), 1, cv2.LINE_AA)
    return sheet


def write_preview(path: str | Path, config: SynthConfig, seed: int, n: int = 9, columns: int = 3) -> Path:
    """Render the dataset's first ``n`` images (same seeds as ``write_dataset``) into a PNG contact sheet."""
    from wirewatch.files import write_bytes_atomically
    from wirewatch.synth.dataset import encode_png, sample_seed

    samples = [generate(config, sample_seed(seed, i)) for i in range(n)]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(p, encode_png(contact_sheet(samples, columns)))
    return p
