"""Background levelling (``wirewatch.segment.background``, the model backends' ``background="level"``):
an offset, a gradient and smooth bumps come off while the wires keep their values; a clean frame passes
nearly unchanged; the shipped model finds the wires of a frame with a background again."""

from __future__ import annotations

import numpy as np
import pytest

from wirewatch.errors import InputError
from wirewatch.segment.background import check_background, estimate_background, level_background
from wirewatch.segment.model_files import packaged_model_path
from wirewatch.synth.config import preset_config, with_overrides
from wirewatch.synth.generate import generate

BACKGROUND = {"background": {"offset": 0.08, "gradient": 0.12, "bumps": 0.05}}
# four to five times the realistic one (about 12 % of the pixels saturate): too much for a model as given
HEAVY = {"background": {"offset": 0.4, "gradient": 0.6, "bumps": 0.2}}


def frames(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same wires without and with the realistic preset's background; and their true masks."""
    clean = generate(preset_config("ptychography"), seed=seed)
    shaded = generate(with_overrides(preset_config("ptychography"), BACKGROUND), seed=seed)
    return clean.image.astype(np.float32) / 255.0, shaded.image.astype(np.float32) / 255.0, clean.masks


def test_the_same_wires_get_the_same_pixels_back() -> None:
    clean, shaded, masks = frames(7001)
    assert np.abs(shaded - clean).mean() > 0.05  # the background is large against wires of ~0.1-0.3
    levelled = level_background(shaded)
    wires = masks.any(axis=0)
    assert levelled.dtype == np.float32 and levelled.shape == shaded.shape
    assert np.median(levelled[~wires]) < 0.01  # the background is gone ...
    # ... and the wires keep their contrast over it (within ~2 grey levels in the median)
    assert np.median(np.abs(levelled[wires] - clean[wires])) < 2 / 255


def test_a_clean_frame_is_left_nearly_as_it_was() -> None:
    clean, _, masks = frames(7002)
    levelled = level_background(clean)
    assert np.abs(levelled - clean).max() < 0.05
    assert np.median(np.abs(levelled - clean)[masks.any(axis=0)]) < 1 / 255


@pytest.mark.parametrize("shape", [(8, 8), (40, 300), (1, 64)])
def test_small_and_thin_frames_work(shape: tuple[int, int]) -> None:
    image = np.full(shape, 0.3, np.float32)
    np.testing.assert_allclose(estimate_background(image), 0.3, atol=1e-5)
    np.testing.assert_allclose(level_background(image), 0.0, atol=1e-5)


@pytest.mark.parametrize(("background", "radius", "match"), [
    ("subtract", 24, "background must be one of none, level"), (None, 24, "background must be one of"),
    ("level", 0, "background_radius must be"), ("level", "24", "background_radius must be"),
    ("level", True, "background_radius must be"), ("level", 1000, "background_radius must be")])
def test_bad_options_name_the_problem(background: object, radius: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_background(background, radius)
    assert check_background("none", 10) == ("none", 10.0)


def test_the_shipped_model_finds_the_wires_of_a_frame_with_a_background() -> None:
    """With the realistic preset's background (offset, gradient, bumps) under the default preset's wires,
    levelled (the default), the model finds about what it finds on the clean frame, and never fewer wires
    than as given; under a background heavy enough to defeat a model as given, levelling gets wires back.
    How much the frame as given loses is the model's own robustness, not levelling's: the model shipped
    before issue 37 found 24 / 38 wires as given under the realistic background (30 frames: box / mask AP
    0.393 / 0.202 as given, 0.853 / 0.726 levelled; clean 0.855 / 0.736), the mix candidate 36 / 38.
    Under ``HEAVY``: as given 3 / 25, levelled 30 / 34 of 38 (old model / candidate)."""
    if not packaged_model_path().is_file():
        pytest.skip("no default model shipped")
    from wirewatch.segment.onnx_backend import OnnxSegmenter

    levelled_seg = OnnxSegmenter("default", threads=1)
    as_given_seg = OnnxSegmenter("default", threads=1, background="none")
    assert levelled_seg.background == "level"

    def matched(masks: np.ndarray, truth: np.ndarray) -> int:
        """True wires with a detection at mask IoU >= 0.5."""
        inter = (masks[:, None] & truth[None]).sum(axis=(2, 3))
        union = (masks[:, None] | truth[None]).sum(axis=(2, 3))
        return int(((inter / np.maximum(union, 1)) >= 0.5).any(axis=0).sum()) if len(masks) else 0

    found = {"clean": 0, "as given": 0, "levelled": 0, "heavy as given": 0, "heavy levelled": 0}
    wires = 0
    for seed in (7003, 7004):
        clean, shaded, truth = frames(seed)
        heavy = generate(with_overrides(preset_config("ptychography"), HEAVY), seed=seed).image
        heavy = heavy.astype(np.float32) / 255.0
        wires += len(truth)
        found["clean"] += matched(as_given_seg.segment(clean).masks, truth)
        found["as given"] += matched(as_given_seg.segment(shaded).masks, truth)
        found["levelled"] += matched(levelled_seg.segment(shaded).masks, truth)
        found["heavy as given"] += matched(as_given_seg.segment(heavy).masks, truth)
        found["heavy levelled"] += matched(levelled_seg.segment(heavy).masks, truth)
    assert found["clean"] >= 0.8 * wires, found
    assert found["levelled"] >= max(found["clean"], found["as given"]) - 0.05 * wires, found
    assert found["heavy levelled"] >= found["heavy as given"] + 0.1 * wires, found
