"""valueAlarm severities with hysteresis, statistic units/descriptions, and the EPICS config validation."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from wirewatch.epics import alarms
from wirewatch.epics.config import EpicsConfig, StatisticPV


def sequence(values: list[float], limits: StatisticPV) -> list[tuple[int, str]]:
    state, out = alarms.OK, []
    for v in values:
        state = alarms.evaluate(v, limits, state)
        out.append((state.severity, state.message))
    return out


def test_minor_and_major_on_both_sides() -> None:
    lim = StatisticPV(low_alarm=1, low_warning=2, high_warning=8, high_alarm=9)
    assert sequence([5, 8, 9, 12, 5, 2, 1, 0.5, 5], lim) == [
        (0, ""), (1, "HIGH"), (2, "HIHI"), (2, "HIHI"), (0, ""), (1, "LOW"), (2, "LOLO"), (2, "LOLO"), (0, "")]


def test_hysteresis_keeps_an_alarm_until_clearly_back() -> None:
    lim = StatisticPV(high_warning=10, high_alarm=20, hysteresis=1.0)
    assert sequence([21, 19.5, 18.9, 9.5, 8.9], lim) == [
        (2, "HIHI"), (2, "HIHI"), (1, "HIGH"), (1, "HIGH"), (0, "")]


def test_nan_is_invalid_and_no_limits_is_no_alarm() -> None:
    assert alarms.evaluate(math.nan, StatisticPV()).severity == alarms.INVALID
    assert alarms.evaluate(1e9, StatisticPV()) == alarms.OK


@pytest.mark.parametrize(("name", "units"), [("particle_count", "particles"), ("length_px_mean", "px"),
                                             ("area_px_p90", "px^2"), ("area_nm2_mean", "nm^2"),
                                             ("width_nm_median", "nm"), ("orientation_mean_deg", "deg"),
                                             ("number_density_per_um2", "1/um^2"), ("aspect_ratio_mean", ""),
                                             ("coverage_fraction", "")])
def test_units_from_contract_names(name: str, units: str) -> None:
    assert alarms.default_units(name) == units


def test_descriptions() -> None:
    assert alarms.default_description("length_px_p10") == "10th percentile of per-particle length_px"
    assert "particles" in alarms.default_description("particle_count")


def test_config_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="low_alarm <= low_warning"):
        StatisticPV(low_alarm=5, low_warning=1, high_alarm=3)
    with pytest.raises(ValidationError, match="not a valid PV name"):
        EpicsConfig.model_validate({"server": {"prefix": "BL7 WW:"}})
    with pytest.raises(ValidationError, match="EPICS_PVA_"):
        EpicsConfig.model_validate({"pva": {"PATH": "/bin"}})
    with pytest.raises(ValidationError, match="extra"):
        EpicsConfig.model_validate({"server": {"prefixx": "A:"}})
    cfg = EpicsConfig.model_validate({"input": {"pv": "13SIM1:Pva1:Image"},
                                      "server": {"prefix": "BL7:WW:", "statistics": {"particle_count": {
                                          "low_alarm": 2, "high_warning": 40}}}})
    assert cfg.server.statistics["particle_count"].low_alarm == 2


def test_importing_the_epics_modules_does_not_import_p4p() -> None:
    import subprocess
    import sys

    code = ("import sys, wirewatch.epics.config, wirewatch.epics.alarms, wirewatch.epics.ntndarray, "
            "wirewatch.epics.cli, wirewatch.epics.daemon, wirewatch.epics.server, wirewatch.epics.source, "
            "wirewatch.cli.run, wirewatch.config.daemon; "
            "print('p4p' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_phoebus_display_names_only_pvs_the_server_serves() -> None:
    """Every PV in deploy/epics/wirewatch.bob is one the server creates for the example config."""
    import re
    import xml.etree.ElementTree as ET
    from pathlib import Path

    import yaml

    pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")
    from wirewatch.epics.server import PvaServer
    from wirewatch.stats.aggregates import aggregate_names

    root = Path(__file__).resolve().parents[2]
    example = yaml.safe_load((root / "config" / "epics-example.yaml").read_text())
    cfg = EpicsConfig.model_validate(example["epics"])
    rules = [r["name"] for r in example["alerts"]["rules"]]
    server = PvaServer(cfg.server, statistics=aggregate_names(True), rules=rules)
    served = set(server.provider.keys())
    tree = ET.parse(root / "deploy" / "epics" / "wirewatch.bob")
    names = {el.text for el in tree.iter() if el.tag in ("pv_name", "y_pv") and el.text}
    assert len(names) >= 20
    for name in names:
        m = re.fullmatch(r"pva://\$\(P\)(.+)", name)
        assert m, name
        assert cfg.server.prefix + m.group(1) in served, name


def test_example_config_loads_as_a_daemon_config() -> None:
    from pathlib import Path

    from wirewatch.config.daemon import load_daemon_config

    cfg = load_daemon_config(Path(__file__).resolve().parents[2] / "config" / "epics-example.yaml", environ={})
    assert cfg.epics.input.pv == "13SIM1:Pva1:Image" and cfg.epics.server.prefix == "BL7:WW:"
    assert cfg.epics.server.statistics["particle_count"].low_alarm == 2
