"""Instrument changes the simulator applies to the drawn frame: beam intensity and stage drift (issue 44)."""

from __future__ import annotations

import numpy as np
import pytest

from wirewatch.quality import blur_sigma_px
from wirewatch.simulate.producer import FrameMaker, smear
from wirewatch.simulate.scenario import Scenario, resolve_scenario


def test_shipped_drift_and_intensity_scenarios_are_instrument_events_not_sample_changes() -> None:
    for name in ("drift", "intensity"):
        scenario = resolve_scenario(name)
        assert scenario.change_points == ()
        assert [c.frame for c in scenario.instrument_changes] == [60]
        assert scenario.truth()["change_points"] == []


def test_intensity_drops_the_counts_and_adds_shot_noise() -> None:
    maker = FrameMaker(resolve_scenario("intensity"))
    before, after = maker.image(59), maker.image(60)
    assert before.dtype == np.uint16
    assert np.median(after) == pytest.approx(0.3 * np.median(before), rel=0.03)  # the empty beam: 2000 -> 600
    assert not np.array_equal(maker.image(59), maker.image(58))  # shot noise differs per frame, reproducibly
    assert np.array_equal(maker.image(59), before)


def test_intensity_on_grey_frames_scales_the_grey_levels() -> None:
    scenario = Scenario.model_validate({"name": "dim", "frames": 4, "seed": 3, "size": 64, "instrument_changes": [
        {"frame": 2, "intensity": 0.5}]})
    maker = FrameMaker(scenario)
    plain = FrameMaker(scenario.model_copy(update={"instrument_changes": []}))
    assert np.array_equal(maker.image(1), plain.image(1))
    assert np.abs(maker.image(2).astype(int) - np.rint(plain.image(2) * 0.5)).max() <= 1


def test_drift_smears_along_its_direction_only() -> None:
    maker = FrameMaker(resolve_scenario("drift"))
    assert resolve_scenario("drift").drift_at(59) == (0.0, 0.0)
    assert resolve_scenario("drift").drift_at(90) == (4.0, 3.0)
    still = FrameMaker(resolve_scenario("drift").model_copy(update={"exposure": 0.0}))
    assert np.array_equal(maker.image(59), still.image(59))
    for f in (70, 71, 72):  # the same scene, 5 px of motion during the exposure: blurrier edges
        assert blur_sigma_px(maker.image(f).astype(np.float32)) > 1.05 * blur_sigma_px(still.image(f).astype(np.float32))
    # a vertical bar smeared along x widens; along y it only lengthens
    bar = np.zeros((40, 40), np.uint8)
    bar[5:35, 18:22] = 200
    along_x = smear(bar, 6.0, 0.0)
    along_y = smear(bar, 0.0, 6.0)
    assert (along_x[20] > 20).sum() > (bar[20] > 20).sum() + 3
    assert (along_y[20] > 20).sum() == (bar[20] > 20).sum()
    assert along_x.sum() == pytest.approx(bar.sum(), rel=0.01)  # the signal is moved, not lost


def test_sample_changes_cannot_carry_instrument_fields() -> None:
    with pytest.raises(ValueError, match="instrument_changes"):
        Scenario.model_validate({"name": "x", "changes": [{"frame": 3, "intensity": 0.5}]})
    with pytest.raises(ValueError, match="px per frame"):
        Scenario.model_validate({"name": "x", "instrument_changes": [{"frame": 3, "drift": {"z": 1.0}}]})
