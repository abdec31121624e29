"""Scenarios: how the synthetic specimen's morphology changes over a run.

A scenario is a YAML file that starts from a synthesiser preset, applies ``base``
overrides, then over frame numbers:

- ``changes``: abrupt steps at a frame (``set`` absolute values and/or ``scale``
  factors on dotted ``SynthConfig`` keys). Each step is a TRUE change point.
- ``instrument_changes``: abrupt steps of the instrument (refocus: ``blur_sigma``; magnification:
  lengths, widths and count together) given like ``changes``, plus two that act on the drawn frame
  rather than the synthesiser: ``intensity`` (the beam: a factor on the detected signal, transmission
  counts or grey levels) and ``drift`` (the stage moves ``{x, y}`` px per frame from then on; each frame
  is drawn as a new scene, so what a drift does to it is the motion during the exposure: a smear of
  ``|v| x exposure`` px along the drift). They are NOT sample change points: a monitor should
  attribute them to the instrument (``wirewatch.quality``), not alert on the sample.
- ``ramps``: steady drifts (a factor or value interpolated linearly between two
  frames), e.g. wires lengthening as they grow. Ramps are not change points.

``Scenario.config_at(frame)`` gives the ``SynthConfig`` to draw frame ``frame``
with; ``Scenario.change_points`` the true change-point frames (what a detector
should find). The change-point evaluation harness loads scenarios the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from wirewatch.config.base import StrictModel, read_yaml, shipped_dir, validate
from wirewatch.errors import ConfigError

if TYPE_CHECKING:  # the synthesiser is imported lazily: loading a scenario stays cheap
    from wirewatch.synth.config import SynthConfig


class Change(StrictModel):
    """An abrupt change at ``frame`` (a true change point); it persists for the rest of the run."""

    frame: int = Field(ge=1)
    label: str = ""
    set: dict[str, Any] = Field(default_factory=dict)  # dotted SynthConfig key -> new value
    scale: dict[str, float] = Field(default_factory=dict)  # dotted key -> factor (numbers and distributions)
    statistics: list[str] = Field(default_factory=list)  # per-frame statistics expected to move (for scoring)
    # instrument changes only (they act on the drawn frame, not on the specimen):
    intensity: float | None = Field(default=None, gt=0)  # beam: factor on the detected signal from here on
    drift: dict[str, float] | None = None  # stage velocity {x, y} in px per frame from here on

    @model_validator(mode="after")
    def _not_empty(self) -> Change:
        if not self.set and not self.scale and self.intensity is None and self.drift is None:
            raise ValueError(f"change at frame {self.frame} sets nothing: give 'set', 'scale', 'intensity' "
                             "or 'drift'")
        if self.drift is not None and (not set(self.drift) <= {"x", "y"} or not self.drift):
            raise ValueError(f"change at frame {self.frame}: drift takes px per frame as {{x: .., y: ..}}, "
                             f"got {self.drift}")
        return self


class Ramp(StrictModel):
    """A linear drift of one key between ``start_frame`` and ``end_frame`` (held outside).

    ``mode: scale`` multiplies the key (a number or a distribution, whose bounds scale) by a
    factor going from ``start`` to ``end``; ``mode: value`` sets a number going from ``start`` to ``end``.
    """

    key: str
    mode: Literal["scale", "value"] = "scale"
    start: float
    end: float
    start_frame: int = Field(default=0, ge=0)
    end_frame: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> Ramp:
        if self.end_frame <= self.start_frame:
            raise ValueError(f"ramp {self.key}: end_frame ({self.end_frame}) must be after "
                             f"start_frame ({self.start_frame})")
        return self

    def value_at(self, frame: int) -> float:
        t = min(max((frame - self.start_frame) / (self.end_frame - self.start_frame), 0.0), 1.0)
        return self.start + t * (self.end - self.start)


class Scenario(StrictModel):
    """A simulated experiment: what the specimen looks like at each frame."""

    name: str
    description: str = ""
    frames: int = Field(default=300, ge=1)  # default run length
    seed: int = 0
    preset: str = "ptychography"
    size: int = Field(default=256, ge=16, le=4096)
    base: dict[str, Any] = Field(default_factory=dict)
    changes: list[Change] = Field(default_factory=list)
    instrument_changes: list[Change] = Field(default_factory=list)  # not sample change points
    ramps: list[Ramp] = Field(default_factory=list)
    pixel_size_nm: float | None = Field(default=None, gt=0)
    signal: Literal["optical_density", "transmission"] = "optical_density"
    i0: float = Field(default=10000.0, gt=0)  # incident counts when signal is transmission
    shot_noise: bool = False  # transmission: Poisson counts (a weaker beam is a noisier frame)
    exposure: float = Field(default=1.0, ge=0, le=1)  # share of the frame period the detector integrates

    @model_validator(mode="after")
    def _changes_sorted_and_unique(self) -> Scenario:
        frames = [c.frame for c in self.changes]
        if frames != sorted(set(frames)):
            raise ValueError(f"changes must have distinct frames in increasing order, got {frames}")
        for c in self.changes:
            if c.intensity is not None or c.drift is not None:
                raise ValueError(f"change at frame {c.frame}: intensity and drift are the instrument's; "
                                 "list them under instrument_changes")
        return self

    def intensity_at(self, frame: int) -> float:
        """The beam's factor on the detected signal at ``frame`` (1 unless an instrument change set it)."""
        factor = 1.0
        for change in self.instrument_changes:
            if change.frame <= frame and change.intensity is not None:
                factor = change.intensity
        return factor

    def drift_at(self, frame: int) -> tuple[float, float]:
        """The stage's velocity (x, y) in px per frame at ``frame``."""
        velocity = (0.0, 0.0)
        for change in sorted(self.instrument_changes, key=lambda c: c.frame):
            if change.frame <= frame and change.drift is not None:
                velocity = (float(change.drift.get("x", 0.0)), float(change.drift.get("y", 0.0)))
        return velocity

    @property
    def change_points(self) -> tuple[int, ...]:
        """The true change-point frames (first frame drawn with the new morphology)."""
        return tuple(c.frame for c in self.changes)

    def seed_for(self, frame: int) -> int:
        """A deterministic, distinct seed per frame."""
        return (self.seed * 1_000_003 + frame) & 0x7FFF_FFFF

    def _steps(self) -> list[Change]:
        """Sample and instrument changes together, in frame order (both act on the synthesiser)."""
        return sorted([*self.changes, *self.instrument_changes], key=lambda c: c.frame)

    def overrides_at(self, frame: int) -> dict[str, Any]:
        """The dotted-key overrides (absolute values) in force at ``frame``, before ramps."""
        out: dict[str, Any] = dict(self.base)
        for change in self._steps():
            if change.frame > frame:
                break
            out.update(change.set)
        return out

    def config_at(self, frame: int) -> SynthConfig:
        """The synthesiser config that draws frame ``frame``."""
        from wirewatch.synth.config import preset_config, with_overrides

        if frame < 0:
            raise ConfigError(f"frame must be >= 0, got {frame}")
        config = preset_config(self.preset, self.size)
        config = with_overrides(config, self.overrides_at(frame), f"scenario {self.name!r} at frame {frame}")
        factors: dict[str, float] = {}
        for change in self._steps():
            if change.frame > frame:
                break
            for key, factor in change.scale.items():
                factors[key] = factors.get(key, 1.0) * factor
        values: dict[str, float] = {}
        for ramp in self.ramps:
            if ramp.mode == "scale":
                factors[ramp.key] = factors.get(ramp.key, 1.0) * ramp.value_at(frame)
            else:
                values[ramp.key] = ramp.value_at(frame)
        scaled = {key: _scaled(_get(config.model_dump(), key, self.name), factor, key, self.name)
                  for key, factor in factors.items()}
        return with_overrides(config, {**scaled, **values}, f"scenario {self.name!r} at frame {frame}")

    def truth(self, frames: int | None = None) -> dict[str, Any]:
        """The ``truth.json`` document: the scenario and its true change points within ``frames``."""
        n = self.frames if frames is None else frames
        return {
            "scenario": self.name,
            "description": self.description,
            "frames": n,
            "seed": self.seed,
            "size": self.size,
            "change_points": [c.frame for c in self.changes if c.frame < n],
            "changes": [c.model_dump() for c in self.changes if c.frame < n],
            "instrument_changes": [c.model_dump() for c in self.instrument_changes if c.frame < n],
            "ramps": [r.model_dump() for r in self.ramps],
        }

    def check(self) -> None:
        """Build the config at every frame where something changes, so bad keys fail at load."""
        steps = (c.frame for c in self.instrument_changes)
        for frame in {0, self.frames - 1, *self.change_points, *steps, *(r.end_frame for r in self.ramps)}:
            self.config_at(frame)


def _get(tree: Mapping[str, Any], key: str, scenario: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"scenario {scenario!r}: unknown synthesiser key {key!r}")
        node = node[part]
    return node


def _scaled(value: Any, factor: float, key: str, scenario: str) -> Any:
    """``value * factor`` for a number, or a distribution / count range with its bounds scaled."""
    if isinstance(value, bool):
        raise ConfigError(f"scenario {scenario!r}: cannot scale boolean key {key!r}")
    if isinstance(value, int):
        return max(0, round(value * factor))
    if isinstance(value, float):
        return value * factor
    if isinstance(value, Mapping):
        if {"low", "high"} <= set(value):  # a Dist
            out = dict(value)
            for bound in ("low", "high", "median"):
                if out.get(bound) is not None:
                    out[bound] = out[bound] * factor
            return out
        if {"min", "max"} <= set(value):  # a CountRange
            return {"min": max(0, round(value["min"] * factor)), "max": max(0, round(value["max"] * factor))}
    raise ConfigError(f"scenario {scenario!r}: key {key!r} is not a number or a distribution; cannot scale it")


def load_scenario(path: str | Path, *, check: bool = True) -> Scenario:
    """Read and validate a scenario YAML file (``check`` also validates every synthesiser key)."""
    scenario = validate(Scenario, read_yaml(path), str(path))
    if check:
        scenario.check()
    return scenario


SCENARIO_DIR = shipped_dir() / "scenarios"  # package data (the repository's config/scenarios)

# The demo scenario, built in so `wirewatch demo` also works from an installed wheel without the
# repository's config/ folder. Must equal config/scenarios/demo.yaml (a test checks).
BUILTIN_DEMO: dict[str, Any] = {
    "name": "demo",
    "description": "wires lengthen steadily; width jumps at 75, density doubles at 150, alignment appears at 225",
    "frames": 300, "seed": 7, "preset": "ptychography", "size": 256, "pixel_size_nm": 10.0,
    "base": {"wires.count": {"min": 10, "max": 14}},
    "changes": [
        {"frame": 75, "label": "width jumps by 60 %", "scale": {"wires.width": 1.6},
         "statistics": ["width_px_mean", "width_px_median", "area_px_mean"]},
        {"frame": 150, "label": "particle density doubles", "scale": {"wires.count": 2.0},
         "statistics": ["particle_count", "coverage_fraction"]},
        {"frame": 225, "label": "alignment appears", "set": {"wires.orientation.kappa": 8.0,
                                                             "wires.orientation.mean_deg": 30.0},
         "statistics": ["orientation_order", "orientation_mean_deg"]},
    ],
    "ramps": [{"key": "wires.length", "mode": "scale", "start": 1.0, "end": 1.4, "start_frame": 0,
               "end_frame": 300}],
}


def shipped_scenario_path(name: str) -> Path:
    """Path of a scenario shipped in the repository's ``config/scenarios`` (e.g. ``demo``)."""
    path = SCENARIO_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"no shipped scenario {name!r} (looked for {path})")
    return path


def resolve_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario from a file path, or by the name of a shipped one."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or p.exists():
        return load_scenario(p)
    if str(name_or_path) == "demo" and not (SCENARIO_DIR / "demo.yaml").exists():
        scenario = validate(Scenario, BUILTIN_DEMO, "built-in demo scenario")
        scenario.check()
        return scenario
    return load_scenario(shipped_scenario_path(str(name_or_path)))
