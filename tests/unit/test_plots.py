"""Plots: exact colours where they carry meaning, real PNG files, atomic saving, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wirewatch.errors import InputError
from wirewatch.plots import (
    comparison_rgb,
    instance_colours,
    kde_curve,
    overlay_rgb,
    plot_comparison,
    plot_distributions,
    plot_overlay,
    plot_series,
)
from wirewatch.plots.comparison import FN_COLOUR, FP_COLOUR, TP_COLOUR
from wirewatch.types import ChangePoint


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def has_colour(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> bool:
    return bool((np.abs(rgb.astype(int) - np.array(colour)).max(axis=-1) <= tol).any())


def test_comparison_colours_tp_blue_fp_green_fn_red() -> None:
    pred = np.array([[1, 1, 0, 0]], bool)
    gt = np.array([[1, 0, 1, 0]], bool)
    rgb = comparison_rgb(pred, gt)
    assert tuple(rgb[0, 0]) == TP_COLOUR and tuple(rgb[0, 1]) == FP_COLOUR
    assert tuple(rgb[0, 2]) == FN_COLOUR and tuple(rgb[0, 3]) == (0, 0, 0)
    b, g, r = TP_COLOUR, FP_COLOUR, FN_COLOUR
    assert b[2] == max(b) and g[1] == max(g) and r[0] == max(r)


def test_plot_comparison_writes_a_png_with_all_three_classes(tmp_path: Path) -> None:
    pred = np.zeros((64, 64), bool)
    gt = np.zeros((64, 64), bool)
    pred[10:40, 10:40] = True
    gt[20:50, 20:50] = True
    out = plot_comparison(pred, gt, tmp_path / "sub" / "cmp.png", image=np.random.rand(64, 64), title="t")
    rgb = read_png(out)
    assert all(has_colour(rgb, c) for c in (TP_COLOUR, FP_COLOUR, FN_COLOUR))
    assert [p.name for p in out.parent.iterdir()] == ["cmp.png"]  # no temporary file left behind


def test_overlay_tints_masks_in_distinct_colours_and_keeps_background() -> None:
    image = np.zeros((30, 30), np.float32)
    image[0, 0] = 1.0
    masks = np.zeros((2, 30, 30), bool)
    masks[0, 5:15, 5:15] = True
    masks[1, 18:28, 18:28] = True
    rgb = overlay_rgb(image, masks)
    assert rgb.shape == (30, 30, 3) and rgb.dtype == np.uint8
    colours = instance_colours(2)
    assert tuple(rgb[5, 5]) == tuple(colours[0])  # outline pixel: the pure instance colour
    assert tuple(rgb[18, 18]) == tuple(colours[1])
    assert not np.array_equal(colours[0], colours[1])
    assert tuple(rgb[2, 25]) == (0, 0, 0)  # background untouched
    inner = rgb[10, 10].astype(int)
    assert inner.max() > 0 and inner.max() < colours[0].max()  # tinted, not painted


def test_plot_overlay_and_distributions_write_pngs(tmp_path: Path) -> None:
    masks = np.zeros((2, 40, 50), bool)
    masks[0, 5:10, 5:45] = True
    masks[1, 20:38, 20:24] = True
    plot_overlay(np.random.rand(40, 50), masks, tmp_path / "o.png", scores=np.array([0.9, 0.5]), title="x")
    assert read_png(tmp_path / "o.png").shape[0] > 100
    rng = np.random.default_rng(0)
    pred = {"area_px": rng.normal(100, 10, 50), "aspect_ratio": rng.normal(5, 1, 50),
            "orientation_deg": rng.uniform(0, 180, 50)}
    gt = {"area_px": rng.normal(110, 10, 60), "aspect_ratio": rng.normal(5, 1, 60),
          "orientation_deg": rng.uniform(0, 180, 60)}
    empty = {"area_px": np.zeros(0), "aspect_ratio": np.zeros(0), "orientation_deg": np.zeros(0)}
    out = plot_distributions({"prediction": pred, "ground truth": gt, "none": empty}, tmp_path / "d.png")
    assert read_png(out).shape[1] > 600


def test_kde_needs_two_distinct_values() -> None:
    grid = np.linspace(0, 10, 11)
    assert kde_curve(np.array([3.0]), grid) is None
    assert kde_curve(np.array([3.0, 3.0, 3.0]), grid) is None
    curve = kde_curve(np.array([2.0, 3.0, 4.0, 5.0]), grid)
    assert curve is not None and np.argmax(curve) in (3, 4)


def test_plot_series_marks_change_points(tmp_path: Path) -> None:
    x = np.arange(100)
    series = {"length_px_mean": np.r_[np.full(50, 10.0), np.full(50, 14.0)], "particle_count": np.full(100, 30.0)}
    cp = ChangePoint(frame=50, detected_at=53, statistics=("length_px_mean",), before={}, after={},
                     effect_size=4.0, detector="cusum")
    out = plot_series(x, series, tmp_path / "s.png", change_points=[cp, 75.0], truth=[50], title="demo")
    assert has_colour(read_png(out), (255, 0, 0), tol=30)
    with pytest.raises(InputError, match="has 3 values"):
        plot_series(x, {"a": [1, 2, 3]}, tmp_path / "bad.png")
    with pytest.raises(InputError, match="at least one"):
        plot_series(x, {}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_series_draws_the_reference_beside_the_measured_series(tmp_path: Path) -> None:
    x = np.arange(60)
    series = {"particle_count": np.full(60, 20.0), "width_px_mean": np.full(60, 5.0)}

    def truth_grey(rgb: np.ndarray) -> int:  # black at alpha 0.6 on white: grey ~102
        r, g, b = (rgb[..., i].astype(int) for i in range(3))
        return int(((abs(r - g) < 6) & (abs(g - b) < 6) & (r > 90) & (r < 115)).sum())

    plain = read_png(plot_series(x, series, tmp_path / "plain.png"))
    out = plot_series(x, series, tmp_path / "ref.png", reference={"particle_count": (x, np.full(60, 25.0))})
    assert truth_grey(read_png(out)) > truth_grey(plain) + 300  # the truth line and its legend entry
    with pytest.raises(InputError, match="reference 'particle_count' has 2 values"):
        plot_series(x, series, tmp_path / "bad.png", reference={"particle_count": (x, [1.0, 2.0])})


def test_pngs_get_the_ordinary_file_mode_not_a_secrets(tmp_path: Path) -> None:
    """Plots are written through a 0600 temp file; the result has the mode the umask gives any new file
    (0644 under umask 022), like the record and the other outputs, and no temp file is left behind."""
    import os
    import stat

    from wirewatch.plots import new_figure, save_figure, save_rgb

    old = os.umask(0o022)
    try:
        fig = new_figure(2, 2)
        fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
        written = [save_figure(fig, tmp_path / "out" / "stats.png"),
                   save_rgb(np.zeros((4, 5, 3), np.uint8), tmp_path / "out" / "overlay.png")]
        os.umask(0o077)  # a user who keeps everything private gets private plots
        written.append(save_rgb(np.zeros((4, 5, 3), np.uint8), tmp_path / "out" / "private.png"))
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [0o644, 0o644, 0o600]
    assert Image.open(written[1]).size == (5, 4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["overlay.png", "private.png", "stats.png"]
