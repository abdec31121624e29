import itertools

import numpy as np
import pytest
from scipy import ndimage

from wirewatch.coco import boxes_of
from wirewatch.errors import InputError
from wirewatch.preprocess import PreprocessConfig, prepare, restrict_to_valid
from wirewatch.segment.fit import FitSegmenter, tile_origins
from wirewatch.types import Detections, Frame


def _frame(image: np.ndarray, **kw) -> Frame:
    return Frame(frame_id=1, image=image, time=0.0, **kw)


class ThresholdSegmenter:
    """Connected components of image > 0.5: a transparent stand-in segmenter that records its inputs."""

    name = "threshold"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def segment(self, image: np.ndarray) -> Detections:
        self.shapes.append(image.shape)
        labels, n = ndimage.label(image > 0.5)
        masks = np.stack([labels == i for i in range(1, n + 1)]) if n else np.zeros((0, *image.shape), bool)
        scores = np.linspace(0.9, 0.5, n).astype(np.float32)
        return Detections(boxes=boxes_of(masks), scores=scores, masks=masks, image_shape=image.shape,
                          mask_scores=scores / 2)


def test_uint8_maps_by_255_like_the_synthetic_training_images() -> None:
    img = np.array([[0, 51, 255]], np.uint8)
    out = prepare(_frame(img, signal="optical_density"), PreprocessConfig())
    assert out.image.dtype == np.float32
    np.testing.assert_allclose(out.image, [[0.0, 0.2, 1.0]], atol=1e-6)


def test_transmission_becomes_optical_density_with_header_i0() -> None:
    i0 = 1000.0
    od = np.array([[0.0, 0.5, 1.0, 2.0]], np.float32)
    counts = (i0 * np.exp(-od)).round().astype(np.uint16)
    out = prepare(_frame(counts, signal="transmission", meta={"i0": i0}), PreprocessConfig())
    assert out.i0 == i0
    np.testing.assert_allclose(out.signal, od, atol=5e-3)
    assert out.image.min() >= 0 and out.image.max() <= 1
    assert np.all(np.diff(out.image[0]) >= 0)  # more material -> brighter


def test_i0_from_config_then_background_estimate() -> None:
    counts = np.full((10, 10), 800, np.uint16)
    counts[2:4, 2:8] = 300
    cfg = PreprocessConfig(i0=1000.0)
    assert prepare(_frame(counts, signal="transmission"), cfg).i0 == 1000.0
    est = prepare(_frame(counts, signal="transmission"), PreprocessConfig())
    assert est.i0 == pytest.approx(800.0)  # empty beam is the bright background
    assert est.signal[0, 0] == pytest.approx(0.0)
    assert est.signal[3, 3] == pytest.approx(-np.log(300 / 800), rel=1e-4)


def test_nodata_pixels_are_zero_and_ignored_by_percentiles() -> None:
    img = np.full((20, 20), 100, np.uint16)
    img[5:8, 2:18] = 1100
    img[0, :] = 65535  # NODATA row
    valid = img != 65535
    out = prepare(_frame(img, valid=valid), PreprocessConfig())
    assert np.all(out.image[0] == 0)
    assert out.image[6, 10] == pytest.approx(1.0)  # the wire, not the NODATA value, sets the top of the scale
    assert out.valid is not None and not out.valid[0].any()


def test_all_invalid_frame_gives_blank_image_not_an_error() -> None:
    img = np.full((4, 4), 255, np.uint8)
    out = prepare(_frame(img, valid=np.zeros((4, 4), bool)), PreprocessConfig())
    assert not out.image.any()


def test_invert_and_bad_shapes() -> None:
    out = prepare(_frame(np.array([[0, 255]], np.uint8)), PreprocessConfig(invert=True))
    np.testing.assert_allclose(out.image, [[1.0, 0.0]])
    with pytest.raises(InputError, match="2-D"):
        prepare(_frame(np.zeros((2, 2, 2), np.uint8)), PreprocessConfig())
    with pytest.raises(InputError, match="valid mask shape"):
        prepare(_frame(np.zeros((2, 2), np.uint8), valid=np.ones((3, 3), bool)), PreprocessConfig())


def test_config_rejects_inverted_percentiles() -> None:
    with pytest.raises(ValueError, match="percentile_high"):
        PreprocessConfig(percentile_low=50, percentile_high=10)


def _rods(shape: tuple[int, int]) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    img[100:110, 20:980] = 1.0  # a long horizontal rod crossing every tile boundary
    img[300:420, 500:508] = 1.0  # a vertical rod
    img[480:500, 40:60] = 1.0  # a blob in a corner tile
    return img


def test_small_frames_pass_through_unchanged() -> None:
    inner = ThresholdSegmenter()
    det = FitSegmenter(inner, max_side=1024).segment(_rods((514, 1000)))
    assert inner.shapes == [(514, 1000)] and len(det) == 3


def test_resize_returns_detections_in_frame_coordinates() -> None:
    inner = ThresholdSegmenter()
    img = _rods((514, 1030))
    det = FitSegmenter(inner, max_side=515, mode="resize").segment(img)
    assert max(inner.shapes[0]) == 515
    assert det.image_shape == (514, 1030) and det.masks.shape[1:] == (514, 1030)
    assert len(det) == 3
    truth = np.stack([m for m in (ThresholdSegmenter().segment(img).masks)])
    for m in det.masks:  # each mask overlaps one true rod by IoU > 0.8
        ious = [(m & t).sum() / (m | t).sum() for t in truth]
        assert max(ious) > 0.8


def test_tiles_cover_the_frame_with_the_overlap() -> None:
    origins = tile_origins((514, 1030), 256, 32)
    ys = sorted({y for y, _ in origins})
    xs = sorted({x for _, x in origins})
    assert ys[0] == 0 and ys[-1] + 256 == 514 and xs[-1] + 256 == 1030
    assert all(b - a <= 256 - 32 for a, b in itertools.pairwise(xs))


def test_tiling_stitches_a_wire_cut_by_tile_edges_and_drops_duplicates() -> None:
    inner = ThresholdSegmenter()
    img = _rods((514, 1030))
    det = FitSegmenter(inner, max_side=300, mode="tile", tile_size=256, tile_overlap=64).segment(img)
    assert all(s[0] <= 256 and s[1] <= 256 for s in inner.shapes) and len(inner.shapes) > 4
    assert len(det) == 3  # the long rod seen by 5 tiles is one detection, the blob seen twice is one
    truth = ThresholdSegmenter().segment(img).masks
    for t in truth:
        best = max(((m & t).sum() / (m | t).sum()) for m in det.masks)
        assert best == pytest.approx(1.0)
    np.testing.assert_array_equal(det.boxes[np.argmax(det.masks.sum((1, 2)))], [20, 100, 980, 110])


def test_restrict_to_valid_clears_nodata_and_drops_empty() -> None:
    img = _rods((514, 1030))
    det = ThresholdSegmenter().segment(img)
    valid = np.ones(img.shape, bool)
    valid[470:, :] = False  # hides the blob entirely, and nothing of the rods
    out = restrict_to_valid(det, valid)
    assert len(out) == 2 and not out.masks[:, 470:].any()
    assert restrict_to_valid(det, None) is det


def test_max_detections_keeps_the_best_scores_in_order() -> None:
    inner = ThresholdSegmenter()
    img = _rods((514, 1000))  # three rods, scores 0.9, 0.7, 0.5 in label order
    det = FitSegmenter(inner, max_side=None, max_detections=2).segment(img)
    np.testing.assert_allclose(det.scores, [0.9, 0.7])
    small = FitSegmenter(ThresholdSegmenter(), max_side=515, max_detections=1).segment(_rods((514, 1030)))
    assert len(small) == 1 and small.masks.shape == (1, 514, 1030)


@pytest.mark.parametrize("kw", [dict(max_side=None, max_detections=2), dict(max_side=515, mode="resize"),
                                dict(max_side=300, mode="tile", tile_size=256, tile_overlap=64)])
def test_mask_scores_follow_their_detections(kw: dict) -> None:
    """Capping, resizing, tiling and NODATA clearing keep each detection's mask score beside it."""
    det = FitSegmenter(ThresholdSegmenter(), **kw).segment(_rods((514, 1030)))
    assert len(det) >= 2 and det.mask_scores is not None
    np.testing.assert_allclose(det.mask_scores, det.scores / 2, rtol=1e-6)
    valid = np.ones((514, 1030), bool)
    valid[470:, :] = False
    cleared = restrict_to_valid(det, valid)
    assert cleared.mask_scores is not None
    np.testing.assert_allclose(cleared.mask_scores, cleared.scores / 2, rtol=1e-6)
