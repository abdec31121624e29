"""Length, width and orientation of straight wires: analytic rectangles rasterised by pixel centres."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wirewatch.stats import particle_descriptors
from wirewatch.stats.accuracy import markdown_table, rectangle_accuracy, rectangle_masks
from wirewatch.stats.descriptors import _mean_smallest_offset, sampling_allowance


def test_rotated_rectangles_read_their_true_size_at_every_angle() -> None:
    # Per (width, length): the worst per-angle bias over sub-pixel positions, angles 1..179 deg.
    rows = rectangle_accuracy(widths=(3.0, 5.0, 9.4, 30.0), lengths=(20.0, 60.0, 200.0),
                              angles_deg=np.arange(1.0, 180.0, 4.0), positions=12, seed=3)
    assert len(rows) == 11  # every pair with length >= 2 x width
    for r in rows:
        assert r.width_bias_px <= 0.5 and r.length_bias_px <= 0.5, r
        assert r.orientation_bias_deg <= 1.0, r
        # A single reading is bounded by the pixel grid (a 9.4 px wide axis-aligned wire covers 9 or
        # 10 whole columns; a short, wide one at 0.5 deg steps one row, which turns its moments axis 3 deg).
        assert r.width_max_px <= 1.5 and r.length_max_px <= 1.5, r
    assert markdown_table(rows).count("\n") == len(rows) + 1


def test_the_old_one_pixel_overshoot_is_gone() -> None:
    # The example: a 9.4 px wide wire read 10.4 px at oblique angles.
    rng = np.random.default_rng(0)
    angles = [17.0, 30.0, 45.0, 63.0, 120.0, 151.0]
    centres = 40.0 + rng.uniform(-0.5, 0.5, (16, 2))
    cols = particle_descriptors(rectangle_masks(60.0, 9.4, angles, centres, 80)).columns
    width = cols["width_px"].reshape(len(angles), -1).mean(axis=1)
    length = cols["length_px"].reshape(len(angles), -1).mean(axis=1)
    np.testing.assert_allclose(width, 9.4, atol=0.3)
    np.testing.assert_allclose(length, 60.0, atol=0.3)


def test_axis_aligned_blocks_stay_exact() -> None:
    masks = np.zeros((2, 40, 40), bool)
    masks[0, 5:12, 3:33] = True  # 30 x 7 horizontal
    masks[1, 2:38, 20:24] = True  # 4 x 36 vertical
    cols = particle_descriptors(masks).columns
    assert cols["length_px"].tolist() == pytest.approx([30.0, 36.0])
    assert cols["width_px"].tolist() == pytest.approx([7.0, 4.0])


def test_sampling_allowance_known_angles() -> None:
    # Axis-aligned: half a pixel per edge (the old +1); 45 deg: 0.5 / sqrt 2 per edge.
    add_long, add_short = sampling_allowance(np.array([0.0, 90.0, 45.0, 135.0]), np.full(4, 50.0), np.full(4, 6.0))
    np.testing.assert_allclose(add_long, [1.0, 1.0, 2**-0.5, 2**-0.5], atol=1e-12)
    np.testing.assert_allclose(add_short, [1.0, 1.0, 2**-0.5, 2**-0.5], atol=1e-12)
    # A generic angle across a long edge: the centres come close to it, little to add.
    _, add_short = sampling_allowance(np.array([23.0]), np.array([150.0]), np.array([5.0]))
    assert add_short[0] < 0.1


def test_three_gap_sum_matches_sorting_the_points() -> None:
    rng = np.random.default_rng(1)
    steps = np.concatenate([rng.uniform(0, 1, 300), [0.0, 1.0, 0.5, 1 / 3, 2 / 3, 0.25, 1e-9, 1 - 1e-9]])
    counts = np.concatenate([rng.integers(1, 800, len(steps) - 3), [1, 1, 2]])
    expected = []
    for step, count in zip(steps, counts, strict=True):
        points = np.sort((np.arange(count) * step) % 1.0)
        gaps = np.diff(np.append(points, points[0] + 1.0))
        expected.append(0.5 * float((gaps * gaps).sum()))
    np.testing.assert_allclose(_mean_smallest_offset(steps, counts), expected, atol=1e-9)


def test_a_crossing_wires_stub_does_not_widen_the_wire() -> None:
    # A model's mask of one wire often holds a piece of the wire crossing it. The rectangle around that
    # mask spans the stub (its short side reads ~2x the wire); the width (area / length) grows only by
    # the stub's pixels over the wire's length.
    rng = np.random.default_rng(4)
    centres = 60.0 + rng.uniform(-0.5, 0.5, (8, 2))
    for angle in (0.0, 23.0, 45.0, 110.0):
        wire = rectangle_masks(100.0, 6.0, [angle], centres, 120)
        crossing = rectangle_masks(20.0, 6.0, [angle + 90.0], centres, 120)  # 7 px beyond each edge
        cols = particle_descriptors(wire | crossing).columns
        sides = [min(cv2.minAreaRect(np.column_stack(np.nonzero(m)[::-1]).astype(np.float32))[1])
                 for m in wire | crossing]
        assert min(sides) >= 12.0, (angle, sides)  # the rectangle spans the stub: 2-3x the wire
        # 2 x 7 x 6 extra pixels over 100 px of length: +0.84 px.
        np.testing.assert_allclose(cols["width_px"], 6.0 + 84.0 / 100.0, atol=0.5, err_msg=str(angle))
        np.testing.assert_allclose(cols["length_px"], 100.0, atol=1.5, err_msg=str(angle))  # the stub tilts the hull
