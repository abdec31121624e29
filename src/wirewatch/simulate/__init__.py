"""Microscope simulator: scenarios of morphology over time, frame production, publishing."""

from wirewatch.simulate.scenario import Change, Ramp, Scenario, load_scenario, resolve_scenario

__all__ = ["Change", "Ramp", "Scenario", "load_scenario", "resolve_scenario"]
