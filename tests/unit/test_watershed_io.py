"""Reading image files into the segmenter convention (2-D float32 in 0..1) with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from wirewatch.errors import InputError
from wirewatch.segment.io import read_image, to_unit_float


def test_png_8_and_16_bit_and_rgb(tmp_path: Path) -> None:
    grey = np.array([[0, 51], [102, 255]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_allclose(out, grey / 255.0, atol=1e-6)
    deep = np.array([[0, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_allclose(read_image(tmp_path / "d.png"), [[0.0, 1.0]], atol=1e-6)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., :] = 255
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=100)
    np.testing.assert_allclose(read_image(tmp_path / "c.jpg"), np.ones((2, 3)), atol=0.01)


def test_float_tiff_kept_in_unit_range_or_rescaled(tmp_path: Path) -> None:
    od = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    tifffile.imwrite(tmp_path / "a.tif", od)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), od)
    tifffile.imwrite(tmp_path / "b.tiff", od * 4 + 1)
    np.testing.assert_allclose(read_image(tmp_path / "b.tiff"), od, atol=1e-6)
    nan = np.array([[np.nan, 0.5]], np.float32)
    np.testing.assert_array_equal(to_unit_float(nan), [[0.0, 0.5]])


@pytest.mark.parametrize(("name", "content", "match"), [
    ("missing.png", None, "not found"),
    ("broken.png", b"not a png at all", "cannot read image"),
    ("broken.tif", b"II*\x00garbage", "cannot read image"),
    ("notes.txt", b"hello", "unsupported image type"),
])
def test_unreadable_images_name_the_file(tmp_path: Path, name: str, content: bytes | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        read_image(path)
    assert name in str(info.value)


def test_volumes_are_rejected() -> None:
    with pytest.raises(InputError, match="2-D"):
        to_unit_float(np.zeros((4, 5, 6), np.float32))
