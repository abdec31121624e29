from pathlib import Path

import pytest

from wirewatch.errors import ConfigError
from wirewatch.simulate.scenario import Scenario, load_scenario, resolve_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["demo", "growth", "steady"])
def test_shipped_scenarios_load(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    assert scenario.name == name
    assert all(0 < f < scenario.frames for f in scenario.change_points)


def test_demo_changes_apply_at_their_frame_and_persist() -> None:
    s = resolve_scenario("demo")
    assert s.change_points == (75, 150, 225)
    before, at, later = s.config_at(74), s.config_at(75), s.config_at(200)
    assert at.wires.width.median == pytest.approx(before.wires.width.median * 1.6)
    assert later.wires.width.median == pytest.approx(at.wires.width.median)
    assert (s.config_at(149).wires.count.min, s.config_at(150).wires.count.min) == (10, 20)
    assert s.config_at(224).wires.orientation.kappa == 0.0
    assert s.config_at(225).wires.orientation.kappa == 8.0


def test_ramp_scales_a_distribution_linearly_and_holds_after_its_end() -> None:
    s = resolve_scenario("demo")
    l0 = s.config_at(0).wires.length
    mid = s.config_at(150).wires.length
    end = s.config_at(300).wires.length
    assert mid.median == pytest.approx(l0.median * 1.2)
    assert mid.low == pytest.approx(l0.low * 1.2)
    assert end.high == pytest.approx(l0.high * 1.4)
    assert s.config_at(10_000).wires.length.median == pytest.approx(end.median)


def test_truth_lists_change_points_within_the_run() -> None:
    s = resolve_scenario("demo")
    truth = s.truth(frames=160)
    assert truth["change_points"] == [75, 150]
    assert [c["label"] for c in truth["changes"]] == ["width jumps by 60 %", "particle density doubles"]


def test_seeds_differ_per_frame_and_are_reproducible() -> None:
    s = Scenario(name="x", seed=5)
    assert s.seed_for(1) != s.seed_for(2)
    assert s.seed_for(1) == Scenario(name="y", seed=5).seed_for(1)


def test_unknown_synth_key_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "name: bad\nchanges:\n  - frame: 3\n    set: {wires.colour: 2}\n")
    with pytest.raises(ConfigError, match="colour"):
        load_scenario(p)


def test_unknown_scenario_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="chnages"):
        load_scenario(_write(tmp_path, "name: bad\nchnages: []\n"))


def test_changes_out_of_order_rejected(tmp_path: Path) -> None:
    text = ("name: bad\nchanges:\n  - {frame: 9, scale: {wires.width: 2}}\n"
            "  - {frame: 4, scale: {wires.width: 2}}\n")
    with pytest.raises(ConfigError, match="increasing order"):
        load_scenario(_write(tmp_path, text))


def test_scaling_a_non_number_is_an_error(tmp_path: Path) -> None:
    text = "name: bad\nchanges:\n  - {frame: 2, scale: {contrast.mode: 2}}\n"
    with pytest.raises(ConfigError, match=r"contrast\.mode"):
        load_scenario(_write(tmp_path, text))


def test_unknown_shipped_name() -> None:
    with pytest.raises(ConfigError, match="no shipped scenario"):
        resolve_scenario("nope")


def test_builtin_demo_equals_the_shipped_file() -> None:
    from wirewatch.config.base import validate
    from wirewatch.simulate.scenario import BUILTIN_DEMO

    assert validate(Scenario, BUILTIN_DEMO) == load_scenario(SCENARIOS / "demo.yaml")
