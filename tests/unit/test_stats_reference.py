"""The vectorised ``particle_descriptors`` against a straightforward per-mask reference.

The fast path gathers row bands, scans them 8 pixels at a time and filters hull candidates before
``minAreaRect``; the reference below does the obvious thing on the full frame for every mask.
Frames hold crossing, overlapping and touching rods, rods cut by the border, masks with several
pieces or holes, single pixels and full-width rows, in frame widths on both scan paths.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirewatch.stats import PARTICLE_COLUMNS, measure, particle_descriptors
from wirewatch.stats import descriptors as descriptors_module
from wirewatch.types import Detections

INTEGER_COLUMNS = ("mask_index", "area_px", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "touches_border")


def reference_descriptors(masks: np.ndarray, image: np.ndarray | None,
                          pixel_size_nm: float | None) -> tuple[dict[str, np.ndarray], int]:
    """Per mask, on the full frame: nonzero pixels, float moments, minAreaRect on every pixel centre."""
    n, h, w = masks.shape
    cover = masks.sum(axis=0)
    rows: dict[str, list[float]] = {name: [] for name in PARTICLE_COLUMNS}
    scale = pixel_size_nm if pixel_size_nm is not None else math.nan
    for i in range(n):
        ys, xs = np.nonzero(masks[i])
        if len(xs) == 0:
            continue
        area = len(xs)
        dx, dy = xs - xs.mean(), ys - ys.mean()
        mu20, mu02, mu11 = (dx * dx).sum(), (dy * dy).sum(), (dx * dy).sum()
        orientation = math.degrees(0.5 * math.atan2(-2.0 * mu11, mu20 - mu02)) % 180.0
        (_, _), (side_a, side_b), _ = cv2.minAreaRect(np.column_stack((xs, ys)).astype(np.float32))
        add_long, _ = descriptors_module.sampling_allowance(
            np.array([orientation]), np.array([max(side_a, side_b)]), np.array([min(side_a, side_b)]))
        length = max(side_a, side_b) + add_long[0]
        width = area / length  # mean thickness (descriptors' docstring)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        od = float(image[ys, xs].astype(np.float64).sum()) if image is not None else math.nan
        values = {
            "mask_index": i, "area_px": area, "area_nm2": area * scale * scale, "length_px": length,
            "width_px": width, "length_nm": length * scale, "width_nm": width * scale,
            "aspect_ratio": length / width, "orientation_deg": orientation,
            "centroid_x": xs.mean() + 0.5, "centroid_y": ys.mean() + 0.5,
            "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
            "od_mean": od / area, "od_integrated": od,
            "overlap_fraction": float((cover[ys, xs] > 1).sum()) / area,
            "touches_border": bool(x0 == 0 or y0 == 0 or x1 == w or y1 == h),
        }
        for name, value in values.items():
            rows[name].append(value)
    return {name: np.array(v) for name, v in rows.items()}, int(np.count_nonzero(cover))


def assert_matches_reference(masks: np.ndarray, image: np.ndarray | None = None,
                             pixel_size_nm: float | None = None) -> None:
    table = particle_descriptors(masks, image, pixel_size_nm)
    expected, covered = reference_descriptors(np.asarray(masks, bool), image, pixel_size_nm)
    assert table.covered_px == covered
    got = table.columns
    assert list(got) == list(PARTICLE_COLUMNS)
    for name in INTEGER_COLUMNS:
        np.testing.assert_array_equal(got[name], expected[name].astype(got[name].dtype), err_msg=name)
    for name in ("area_nm2", "centroid_x", "centroid_y", "od_mean", "od_integrated", "overlap_fraction"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
    # minAreaRect works in float32: both sides agree to OpenCV's precision, not to the last bit.
    for name in ("length_px", "width_px", "aspect_ratio", "length_nm", "width_nm"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-3, equal_nan=True, err_msg=name)
    wrapped = (got["orientation_deg"] - expected["orientation_deg"] + 90.0) % 180.0 - 90.0
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-6, err_msg="orientation_deg")


def rod(shape: tuple[int, int], start: tuple[int, int], end: tuple[int, int], thickness: int) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.line(canvas, start, end, 1, thickness)
    return canvas > 0


def awkward_frame(h: int, w: int, seed: int, random_rods: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N, h, w) with every case the fast path special-cases, plus random rods; and an image."""
    rng = np.random.default_rng(seed)
    shape = (h, w)
    masks = [
        rod(shape, (10, 10), (w - 20, h - 15), 5),  # crossing pair
        rod(shape, (10, h - 12), (w - 25, 12), 4),
        rod(shape, (-30, h // 2), (w // 3, h // 2 + 7), 6),  # cut by the left border
        rod(shape, (w - 40, -20), (w + 10, 40), 3),  # cut by the top-right corner
        rod(shape, (w // 2, h - 8), (w // 2 + 30, h + 20), 7),  # cut by the bottom border
    ]
    left = np.zeros(shape, bool)
    left[h // 2 + 30:h // 2 + 40, 5:30] = True  # clear of the rods above on a 256 px frame
    touching = np.zeros(shape, bool)  # shares an edge with ``left``, no pixel
    touching[h // 2 + 30:h // 2 + 40, 30:55] = True
    pieces = np.zeros(shape, bool)  # one mask, three pieces far apart, one with a hole
    pieces[5:9, w - 30:w - 22] = True
    pieces[h - 30:h - 18, 3:15] = True
    pieces[h - 26:h - 22, 7:11] = False
    pieces[h // 2, w // 2] = True
    single = np.zeros(shape, bool)
    single[h // 3, w // 3] = True
    full_row = np.zeros(shape, bool)  # a whole row: touches both side borders
    full_row[h // 4, :] = True
    inside_other = np.zeros(shape, bool)  # entirely inside the first rod: overlap fraction 1
    inside_other[np.nonzero(masks[0])[0][:40], np.nonzero(masks[0])[1][:40]] = True
    masks += [left, touching, pieces, single, full_row, inside_other, np.zeros(shape, bool)]
    for _ in range(random_rods):
        x, y = rng.integers(-20, w + 20), rng.integers(-20, h + 20)
        angle, length = rng.uniform(0, math.pi), rng.uniform(5, 90)
        end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
        masks.append(rod(shape, (int(x), int(y)), end, int(rng.integers(1, 9))))
    stack = np.stack(masks)
    image = rng.normal(1.0, 0.3, shape).astype(np.float32)
    return stack, image


@pytest.mark.parametrize(("h", "w"), [(256, 256), (203, 250), (96, 136), (120, 61)])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_matches_reference_on_awkward_frames(h: int, w: int, seed: int) -> None:
    masks, image = awkward_frame(h, w, seed)
    assert_matches_reference(masks, image, pixel_size_nm=7.5)
    assert_matches_reference(masks)


def test_frame_facts_of_awkward_frame() -> None:
    masks, _ = awkward_frame(256, 256, 0, random_rods=0)
    cols = particle_descriptors(masks).columns
    by_mask = {int(i): row for row, i in enumerate(cols["mask_index"])}
    assert sorted(by_mask) == [i for i in range(12) if i != 11]  # the empty mask is skipped
    assert cols["overlap_fraction"][by_mask[0]] > 0 and cols["overlap_fraction"][by_mask[1]] > 0  # crossing
    assert cols["overlap_fraction"][by_mask[5]] == 0.0 and cols["overlap_fraction"][by_mask[6]] == 0.0  # touching
    assert cols["overlap_fraction"][by_mask[10]] == 1.0
    assert all(cols["touches_border"][by_mask[i]] for i in (2, 3, 4, 9))
    assert not cols["touches_border"][by_mask[0]]
    assert (cols["length_px"][by_mask[9]], cols["width_px"][by_mask[9]]) == pytest.approx((256.0, 1.0))
    assert (cols["length_px"][by_mask[8]], cols["width_px"][by_mask[8]]) == pytest.approx((1.0, 1.0))
    assert cols["area_px"][by_mask[7]] == 4 * 8 + 12 * 12 - 16 + 1


def test_bench_frame_matches_reference() -> None:
    from wirewatch.bench.stats import rod_frame

    masks, image = rod_frame(512, 100)
    assert_matches_reference(masks, image, pixel_size_nm=10.0)


def test_results_do_not_depend_on_detection_boxes() -> None:
    """A model's boxes may be loose, tight or wrong: measure() reads the masks, never the boxes."""
    masks, image = awkward_frame(128, 128, 3)
    n = len(masks)
    plain = measure(masks, image).particles
    rng = np.random.default_rng(0)
    for boxes in (np.zeros((n, 4)), rng.uniform(0, 128, (n, 4)), np.tile([0.0, 0.0, 128.0, 128.0], (n, 1)),
                  np.tile([60.0, 60.0, 61.0, 61.0], (n, 1))):
        det = Detections(boxes=boxes.astype(np.float32), scores=np.ones(n, np.float32), masks=masks,
                         image_shape=(128, 128))
        got = measure(det, image).particles
        for name in PARTICLE_COLUMNS:
            np.testing.assert_array_equal(got[name], plain[name], err_msg=name)


def test_strided_unaligned_and_integer_inputs_match_reference() -> None:
    masks, image = awkward_frame(64, 96, 5)
    n, h, w = masks.shape
    assert_matches_reference(masks[:, :, ::-1], image[:, ::-1])  # negative strides
    assert_matches_reference(np.asfortranarray(masks), np.asfortranarray(image))
    buffer = np.zeros(masks.size + 1, bool)  # contiguous but not 8-byte aligned: the uint64 scan path
    unaligned = buffer[1:].reshape(n, h, w)
    unaligned[:] = masks
    assert unaligned.ctypes.data % 8 != 0
    assert_matches_reference(unaligned, image)
    assert_matches_reference(masks.astype(np.uint8), image.astype(np.uint16))


def test_more_than_255_masks_on_one_pixel() -> None:
    """Cover counts add 8 pixels per word: past 255 masks a lane would carry, so they go in passes."""
    h, w = 24, 40
    masks = np.zeros((300, h, w), bool)
    masks[:, 5:15, 10:30] = True  # 300 masks on these pixels: 300 = 44 mod 256 ...
    masks[:256, 15:18, 10:30] = True  # ... 256 on these: 0 mod 256 ...
    masks[:257, 18:20, 10:30] = True  # ... and 257: 1 mod 256
    for i in range(300):
        masks[i, i % h, 30 + i % 10] = True  # and pixels shared by fewer masks
    assert_matches_reference(masks)
    assert particle_descriptors(masks).covered_px == 20 * 15 + np.count_nonzero(masks[:, :, 30:].any(axis=0))


def test_nan_and_inf_beside_a_mask_stay_out_of_its_optical_density() -> None:
    """The image is read 8 pixels at a time: values beside the mask in the same word must not leak in."""
    masks = np.zeros((2, 6, 16), bool)
    masks[0, 1:5, 3:5] = True
    masks[1, 2, 9] = True
    image = np.ones((6, 16))
    image[:, 0:3] = np.nan
    image[:, 5:8] = np.inf
    image[:, 10:16] = -np.inf
    image[2, 9] = 4.0
    cols = particle_descriptors(masks, image).columns
    np.testing.assert_array_equal(cols["od_integrated"], [8.0, 4.0])
    image[3, 4] = np.nan  # under the mask: it counts
    assert np.isnan(particle_descriptors(masks, image).columns["od_integrated"][0])


def test_cover_passes_give_the_same_table(monkeypatch: pytest.MonkeyPatch) -> None:
    masks, image = awkward_frame(96, 136, 2)
    one_pass = particle_descriptors(masks, image)
    monkeypatch.setattr(descriptors_module, "MAX_MASKS_PER_COVER_PASS", 4)
    passes = particle_descriptors(masks, image)
    assert passes.covered_px == one_pass.covered_px
    for name in PARTICLE_COLUMNS:
        np.testing.assert_array_equal(passes.columns[name], one_pass.columns[name], err_msg=name)


@pytest.mark.parametrize("passes", [0, 2, 8])
def test_any_number_of_hull_filter_passes_keeps_the_rectangles(passes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(descriptors_module, "HULL_FILTER_PASSES", passes)
    masks, image = awkward_frame(96, 136, 4)
    assert_matches_reference(masks, image)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_hull_filter_keeps_the_rectangle_of_ragged_masks(seed: int) -> None:
    """Ragged, holey random masks (worst case for the row-extreme hull filter) against every pixel."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(3, 60)), int(rng.choice([8, 16, 24, 40, int(rng.integers(3, 60))]))
    n = int(rng.integers(1, 5))
    masks = rng.random((n, h, w)) < rng.uniform(0.02, 0.9)
    for m in masks:  # some smooth blobs too
        if rng.random() < 0.5:
            blob = np.zeros((h, w), np.uint8)
            cv2.ellipse(blob, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                        (int(rng.integers(1, 30)), int(rng.integers(1, 30))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
            m |= blob > 0
    assert_matches_reference(masks, rng.random((h, w)))
