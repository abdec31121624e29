"""Particle descriptors and frame aggregates: exact on analytic shapes, conventions pinned down."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirewatch.errors import InputError
from wirewatch.stats import (
    PARTICLE_COLUMNS,
    aggregate_names,
    check_pixel_size,
    masks_from_labels,
    measure,
    particle_descriptors,
)
from wirewatch.stats.descriptors import sampling_allowance
from wirewatch.types import Detections


def rectangle_mask(shape: tuple[int, int], centre: tuple[float, float], length: float, width: float,
                   angle_deg: float) -> np.ndarray:
    """Pixels whose centres lie inside a rectangle turned ``angle_deg`` counter-clockwise on screen."""
    h, w = shape
    theta = math.radians(angle_deg)
    # On screen "up" is -y, so the long axis points along (cos, -sin) in image coordinates.
    ux, uy = math.cos(theta), -math.sin(theta)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    dx, dy = xx - centre[0], yy - centre[1]
    along = dx * ux + dy * uy
    across = -dx * uy + dy * ux
    return (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)


def axial_difference(a: float, b: float) -> float:
    return abs((a - b + 90.0) % 180.0 - 90.0)


ANGLES = [0.0, 0.4, 3.0, 29.0, 44.9, 45.0, 60.5, 89.6, 90.0, 90.3, 121.0, 135.0, 150.2, 176.0, 179.3, 179.8]


@pytest.mark.parametrize(("length", "width"), [(100.0, 4.0), (120.0, 6.0), (90.0, 10.0)])
def test_rasterised_rectangles_are_measured_exactly(length: float, width: float) -> None:
    angles = sorted(set(ANGLES) | set(np.arange(0.0, 180.0, 7.5).tolist()))
    masks = np.stack([rectangle_mask((200, 200), (100.3, 99.8), length, width, a) for a in angles])
    cols = particle_descriptors(masks).columns
    for i, angle in enumerate(angles):
        assert abs(cols["length_px"][i] - length) <= 1.0, (angle, cols["length_px"][i])
        assert abs(cols["width_px"][i] - width) <= 1.0, (angle, cols["width_px"][i])
        assert axial_difference(cols["orientation_deg"][i], angle) <= 1.0, (angle, cols["orientation_deg"][i])
        assert 0.0 <= cols["orientation_deg"][i] < 180.0
        assert cols["aspect_ratio"][i] == pytest.approx(cols["length_px"][i] / cols["width_px"][i])


def test_orientation_convention_with_image_y_down() -> None:
    shape = (100, 100)
    rising = np.zeros(shape, np.uint8)  # bottom-left (small x, large y) to top-right on screen
    cv2.line(rising, (10, 89), (89, 10), 1, 3)
    falling = np.zeros(shape, np.uint8)  # top-left to bottom-right on screen
    cv2.line(falling, (10, 10), (89, 89), 1, 3)
    horizontal = np.zeros(shape, bool)
    horizontal[50:53, 10:90] = True
    vertical = np.zeros(shape, bool)
    vertical[10:90, 50:53] = True
    cols = particle_descriptors(np.stack([rising > 0, falling > 0, horizontal, vertical])).columns
    np.testing.assert_allclose(cols["orientation_deg"], [45.0, 135.0, 0.0, 90.0], atol=0.5)


def test_axis_aligned_block_measures_exactly_in_pixel_edge_coordinates() -> None:
    mask = np.zeros((1, 40, 50), bool)
    mask[0, 5:12, 10:40] = True  # 7 rows x 30 columns
    image = np.zeros((40, 50), np.float32)
    image[5:12, 10:40] = 0.5
    image[5, 10] = 2.0
    stats = measure(mask, image, pixel_size_nm=2.0)
    p = stats.particles
    assert p["area_px"][0] == 210 and p["area_nm2"][0] == pytest.approx(840.0)
    assert p["length_px"][0] == pytest.approx(30.0) and p["width_px"][0] == pytest.approx(7.0)
    assert p["length_nm"][0] == pytest.approx(60.0) and p["width_nm"][0] == pytest.approx(14.0)
    assert (p["bbox_x0"][0], p["bbox_y0"][0], p["bbox_x1"][0], p["bbox_y1"][0]) == (10, 5, 40, 12)
    assert (p["centroid_x"][0], p["centroid_y"][0]) == pytest.approx((25.0, 8.5))
    assert p["od_integrated"][0] == pytest.approx(209 * 0.5 + 2.0)
    assert p["od_mean"][0] == pytest.approx((209 * 0.5 + 2.0) / 210)
    assert not p["touches_border"][0]
    assert p["overlap_fraction"][0] == 0.0
    assert list(p) == list(PARTICLE_COLUMNS)


def test_overlap_fraction_coverage_and_border() -> None:
    masks = np.zeros((3, 20, 24), bool)
    masks[0, 2:6, 2:12] = True  # 40 px
    masks[1, 4:8, 8:18] = True  # 40 px, shares rows 4-5 x cols 8-11 = 8 px with mask 0
    masks[2, 15:20, 20:24] = True  # touches the bottom-right border
    stats = measure(masks)
    np.testing.assert_allclose(stats.particles["overlap_fraction"], [8 / 40, 8 / 40, 0.0])
    assert list(stats.particles["touches_border"]) == [False, False, True]
    assert stats.aggregates["coverage_fraction"] == pytest.approx((40 + 40 - 8 + 20) / (20 * 24))
    assert stats.aggregates["overlap_fraction_mean"] == pytest.approx(0.4 / 3)


def test_width_not_multiple_of_eight_matches_fast_path() -> None:
    rng = np.random.default_rng(3)
    fast = np.zeros((6, 30, 40), bool)  # W = 40: rows ORed 8 pixels at a time
    for m in fast:
        y, x = rng.integers(0, 25), rng.integers(0, 28)
        m[y:y + rng.integers(1, 6), x:x + rng.integers(1, 11)] = True
    generic = np.zeros((6, 30, 41), bool)  # W = 41: the plain any() path
    generic[:, :, :40] = fast
    a = particle_descriptors(fast).columns
    b = particle_descriptors(generic).columns
    for name in PARTICLE_COLUMNS:
        if name != "touches_border":
            np.testing.assert_array_equal(a[name], b[name])


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_random_blobs_agree_with_reference_implementations(seed: int) -> None:
    from skimage.measure import regionprops

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(8, 70)), int(rng.integers(8, 70))
    n = int(rng.integers(1, 6))
    masks = rng.random((n, h, w)) < rng.uniform(0.01, 0.6)
    masks[0] = False  # always one empty mask
    cols = particle_descriptors(masks).columns
    for row, i in enumerate(cols["mask_index"]):
        m = masks[i]
        (prop,) = regionprops(m.astype(np.uint8))
        assert cols["area_px"][row] == m.sum()
        assert (cols["bbox_y0"][row], cols["bbox_x0"][row], cols["bbox_y1"][row], cols["bbox_x1"][row]) == prop.bbox
        np.testing.assert_allclose((cols["centroid_y"][row] - 0.5, cols["centroid_x"][row] - 0.5), prop.centroid)
        ys, xs = np.nonzero(m)
        (_, _), (rw, rh), _ = cv2.minAreaRect(np.column_stack((xs, ys)).astype(np.float32))
        add_long, _ = sampling_allowance(cols["orientation_deg"][row:row + 1], np.array([max(rw, rh)]),
                                         np.array([min(rw, rh)]))
        length = max(rw, rh) + add_long[0]
        assert cols["length_px"][row] == pytest.approx(length, abs=1e-3)
        assert cols["width_px"][row] == pytest.approx(m.sum() / length, rel=1e-5)  # mean thickness: area / length
        others = masks[np.arange(n) != i].any(axis=0)
        assert cols["overlap_fraction"][row] == pytest.approx((m & others).sum() / m.sum())
    assert list(cols["mask_index"]) == [i for i in range(n) if masks[i].any()]


def test_empty_masks_are_skipped_counted_and_warned(caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from wirewatch.stats import descriptors

    monkeypatch.setitem(descriptors._empty_warning, "last", -math.inf)
    masks = np.zeros((3, 16, 16), bool)
    masks[1, 3:6, 3:9] = True
    with caplog.at_level(logging.WARNING):
        stats = measure(masks)
        measure(masks)  # within the warning interval: no second warning (the daemon measures many frames)
    assert caplog.text.count("skipped 2 empty") == 1
    assert stats.aggregates["empty_masks_skipped"] == 2.0
    assert stats.aggregates["particle_count"] == 1.0
    assert list(stats.particles["mask_index"]) == [1]


def test_no_particles_gives_nan_aggregates() -> None:
    stats = measure(np.zeros((0, 32, 32), bool), pixel_size_nm=5.0, frame_id=7, time=3.5)
    agg = stats.aggregates
    assert agg["particle_count"] == 0.0 and agg["coverage_fraction"] == 0.0
    assert agg["number_density_per_um2"] == 0.0
    assert math.isnan(agg["length_px_mean"]) and math.isnan(agg["orientation_order"])
    assert stats.frame_id == 7 and stats.time == 3.5
    assert set(agg) == set(aggregate_names(with_pixel_size=True))
    assert all(len(v) == 0 for v in stats.particles.values())


def test_aggregates_names_percentiles_and_axial_orientation() -> None:
    # Five horizontal-ish bars of lengths 20..60 px, all parallel.
    masks = np.zeros((5, 100, 100), bool)
    for i, length in enumerate([20, 30, 40, 50, 60]):
        masks[i, 10 + 15 * i: 13 + 15 * i, 5:5 + length] = True
    agg = measure(masks, pixel_size_nm=10.0).aggregates
    assert set(agg) == set(aggregate_names(with_pixel_size=True))
    assert agg["length_px_mean"] == pytest.approx(40.0)
    assert agg["length_px_median"] == pytest.approx(40.0)
    assert agg["length_px_p10"] == pytest.approx(24.0)
    assert agg["length_px_p90"] == pytest.approx(56.0)
    assert agg["length_nm_mean"] == pytest.approx(400.0)
    assert agg["orientation_order"] == pytest.approx(1.0)
    assert agg["orientation_mean_deg"] == pytest.approx(0.0, abs=1e-6)
    # Frame = 100 x 100 px of 10 nm = 1 um^2.
    assert agg["number_density_per_um2"] == pytest.approx(5.0)
    assert math.isnan(agg["od_mean_mean"])  # no image given
    without = measure(masks).aggregates
    assert "length_nm_mean" not in without and "number_density_per_um2" not in without
    assert set(without) == set(aggregate_names(with_pixel_size=False))


def test_axial_mean_wraps_around_zero_and_crossed_wires_have_no_order() -> None:
    near_zero = np.stack([rectangle_mask((120, 120), (60.2, 60.3), 100, 4, a) for a in (10.0, 170.0)])
    agg = measure(near_zero).aggregates
    assert axial_difference(agg["orientation_mean_deg"], 0.0) < 1.0
    crossed = np.stack([rectangle_mask((120, 120), (60.2, 60.3), 100, 4, a) for a in (0.0, 90.0)])
    assert measure(crossed).aggregates["orientation_order"] == pytest.approx(0.0, abs=0.02)


def test_detections_input_and_label_image_helper() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[2:5, 2:10] = 3
    labels[10:18, 12:14] = 7
    masks = masks_from_labels(labels)
    assert masks.shape == (2, 20, 20)
    det = Detections(boxes=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32), masks=masks,
                     image_shape=(20, 20))
    stats = measure(det)
    assert list(stats.particles["area_px"]) == [24, 16]
    assert list(stats.particles["orientation_deg"]) == pytest.approx([0.0, 90.0])


@pytest.mark.parametrize("bad", [0.0, -3.0, math.nan, math.inf, 1e-9, 3e7, "ten"])
def test_bad_pixel_sizes_are_rejected_with_a_clear_message(bad: object) -> None:
    with pytest.raises(InputError, match="pixel size"):
        check_pixel_size(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="pixel size"):
        measure(np.zeros((1, 4, 4), bool), pixel_size_nm=bad)  # type: ignore[arg-type]


def test_bad_masks_and_image_shapes_are_rejected() -> None:
    with pytest.raises(InputError, match=r"\(N, H, W\)"):
        measure(np.zeros((4, 4), bool))
    with pytest.raises(InputError, match="dtype"):
        measure(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(InputError, match="image shape"):
        measure(np.zeros((1, 4, 4), bool), np.zeros((5, 4)))
    assert measure(np.ones((1, 4, 4), np.uint8)).aggregates["particle_count"] == 1.0


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_mirroring_maps_orientation_to_180_minus_theta_and_keeps_sizes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = np.stack([rectangle_mask((90, 90), tuple(rng.uniform(35, 55, 2)), rng.uniform(30, 60), rng.uniform(3, 9),
                                     rng.uniform(0, 180)) for _ in range(3)])
    a = particle_descriptors(masks).columns
    for mirrored in (masks[:, :, ::-1], masks[:, ::-1, :]):
        b = particle_descriptors(np.ascontiguousarray(mirrored)).columns
        np.testing.assert_array_equal(a["area_px"], b["area_px"])
        np.testing.assert_allclose(a["length_px"], b["length_px"], atol=1e-3)
        np.testing.assert_allclose(a["width_px"], b["width_px"], atol=1e-3)
        for ta, tb in zip(a["orientation_deg"], b["orientation_deg"], strict=True):
            assert axial_difference(tb, 180.0 - ta) < 1e-6
