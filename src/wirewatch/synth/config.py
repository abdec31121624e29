"""Generator configuration: plain pydantic models, named presets, validated overrides.

Every length is in pixels of the output image. Presets are defined for 512 x 512
images; ``preset_config(name, size=256)`` scales the geometric quantities (wire
length and width, agglomerate radius, blur, coarse-render factor stays) by
``size / 512`` so a smaller image shows the same scene at a lower resolution.

The microscope simulator varies length, width, density and alignment over time
by copying a config with changed values: use ``with_overrides(config, {...})``
(dotted keys, validated) or ``config.model_copy(update=...)`` on a sub-model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from wirewatch.config.base import StrictModel, deep_merge, validate
from wirewatch.errors import ConfigError

REFERENCE_SIZE = 512


class Dist(StrictModel):
    """A positive random quantity: ``uniform`` on [low, high], ``lognormal`` with ``median`` and
    ``sigma`` (of the log; median defaults to the geometric mean of low and high) clipped to
    [low, high], or ``fixed`` (always ``low``). ``median`` and ``sigma`` matter only for lognormal."""

    kind: Literal["uniform", "lognormal", "fixed"] = "uniform"
    low: float = Field(gt=0)
    high: float = Field(gt=0)
    median: float | None = Field(default=None, gt=0)
    sigma: float = Field(default=0.4, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Dist:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if self.kind == "lognormal" and self.median is not None and not self.low <= self.median <= self.high:
            raise ValueError(f"median ({self.median}) must lie in [low, high] = [{self.low}, {self.high}]")
        return self

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Any:
        size = 1 if n is None else n
        if self.kind == "fixed":
            out = np.full(size, self.low)
        elif self.kind == "uniform":
            out = rng.uniform(self.low, self.high, size)
        else:
            median = self.median if self.median is not None else math.sqrt(self.low * self.high)
            out = np.clip(median * np.exp(self.sigma * rng.standard_normal(size)), self.low, self.high)
        return float(out[0]) if n is None else out

    def scaled(self, factor: float) -> Dist:
        return self.model_copy(update={
            "low": self.low * factor, "high": self.high * factor,
            "median": None if self.median is None else self.median * factor})


class CountRange(StrictModel):
    """An integer drawn uniformly from [min, max] (both included)."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> CountRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.min, self.max + 1))


class Orientation(StrictModel):
    """In-plane wire angle: axial von Mises around ``mean_deg`` with concentration ``kappa``.

    Angles are degrees in [0, 180), counter-clockwise from the image +x axis as seen on
    screen (image y points down), the convention of ``orientation_deg`` in the statistics.
    ``kappa = 0`` is uniform; larger kappa aligns the wires (the order parameter
    S = |mean exp(2i theta)| equals I1(kappa) / I0(kappa)).
    """

    mean_deg: float = 0.0
    kappa: float = Field(default=0.0, ge=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kappa == 0:
            return rng.uniform(0.0, 180.0, n)
        doubled = rng.vonmises(math.radians(2 * self.mean_deg), self.kappa, n)
        return np.mod(np.degrees(doubled) / 2.0, 180.0)


class Shape(StrictModel):
    """Departures from a perfect prism (all zero = the paper's prismatic wires)."""

    taper: Dist | None = None  # relative width change from one end to the other (0.3 = 30 %)
    bend: Dist | None = None  # sagitta of the bent axis as a fraction of the length
    roughness: float = Field(default=0.0, ge=0, le=0.5)  # relative edge-width ripple amplitude
    branch_probability: float = Field(default=0.0, ge=0, le=1)  # chance a wire has a small side branch
    neck_probability: float = Field(default=0.0, ge=0, le=1)  # chance of a sintered neck (local narrowing)


class Agglomerates(StrictModel):
    """Clusters: a fraction of the wires is placed around a few cluster centres."""

    count: CountRange = CountRange(min=0, max=0)
    fraction: float = Field(default=0.0, ge=0, le=1)
    radius: float = Field(default=30.0, gt=0)


class Wires(StrictModel):
    """How many wires, how big, which cross-sections, how oriented."""

    count: CountRange = CountRange(min=15, max=40)
    length: Dist = Dist(kind="lognormal", low=50, high=300, median=140, sigma=0.45)
    width: Dist = Dist(kind="lognormal", low=5, high=20, median=10, sigma=0.3)
    thickness_ratio: Dist = Dist(kind="uniform", low=0.7, high=1.0)  # thickness along the beam / width
    hexagonal_fraction: float = Field(default=0.5, ge=0, le=1)
    orientation: Orientation = Orientation()
    max_tilt_deg: float = Field(default=12.0, ge=0, lt=60)  # out-of-plane tilt of a wire resting on others
    min_area_px: int = Field(default=20, ge=1)  # wires whose visible footprint is smaller are dropped
    shape: Shape = Shape()
    agglomerates: Agglomerates = Agglomerates()


class Background(StrictModel):
    """Background in units of the full scale (1.0 = grey 255): offset, linear gradient, smooth bumps."""

    offset: float = Field(default=0.0, ge=0, le=1)
    gradient: float = Field(default=0.0, ge=0, le=1)  # peak-to-peak of a linear ramp in a random direction
    bumps: float = Field(default=0.0, ge=0, le=1)  # amplitude of a smooth low-frequency variation


class Noise(StrictModel):
    """Detector noise on the normalised image: Poisson (``photons`` counts at full scale) then Gaussian."""

    photons: float | None = Field(default=None, gt=0)
    gaussian_sigma: float = Field(default=0.0, ge=0)  # in grey levels (0..255)


class Contrast(StrictModel):
    """How material becomes signal.

    ``optical_density``: material thickness along the beam, summed over wires (overlaps brighter).
    ``sem``: the top surface seen from above: a flat material level plus edge brightening
    where the surface slopes, on a grey background; lower wires are hidden where covered.
    ``bright_field``: TEM bright field, dark wires on a bright field: ``bright_level`` x
    exp(-thickness / full_scale) (Beer-Lambert with ``full_scale`` as the absorption length).
    """

    mode: Literal["optical_density", "sem", "bright_field"] = "optical_density"
    full_scale: float = Field(default=32.0, gt=0)  # thickness (px) that maps to grey 255
    sem_material: float = Field(default=0.25, ge=0, le=1)  # added to the background on a wire (full-scale units)
    sem_edge: float = Field(default=0.45, ge=0, le=1)  # extra brightness on steep edges (full-scale units)
    bright_level: float = Field(default=0.85, gt=0, le=1)  # bright_field: the empty field's level


class SynthConfig(StrictModel):
    """Everything the generator needs besides the seed."""

    name: str = "ptychography"  # the preset this config started from (recorded in the manifest)
    size: int = Field(default=REFERENCE_SIZE, ge=16, le=8192)
    wires: Wires = Wires()
    contrast: Contrast = Contrast()
    blur_sigma: float = Field(default=2.0, ge=0)  # Gaussian blur after projection (the paper: size 2)
    coarse_factor: int = Field(default=1, ge=1, le=32)  # render at size/factor, then resize up (STXM)
    background: Background = Background()
    noise: Noise = Noise()

    @classmethod
    def preset(cls, name: str, size: int = REFERENCE_SIZE) -> SynthConfig:
        """The named preset (see ``preset_config``)."""
        return preset_config(name, size)


def _ptychography() -> SynthConfig:
    # The paper's recipe: prismatic rectangular/hexagonal wires, additive OD, blur, nothing else.
    return SynthConfig(name="ptychography")


def _realistic() -> SynthConfig:
    # What real ptychography frames show beyond the paper: irregular wires, clusters, noise, uneven bg.
    return SynthConfig(
        name="realistic",
        wires=Wires(
            shape=Shape(taper=Dist(low=0.01, high=0.35), bend=Dist(low=0.005, high=0.08), roughness=0.12,
                        branch_probability=0.15, neck_probability=0.2),
            agglomerates=Agglomerates(count=CountRange(min=1, max=3), fraction=0.35, radius=35.0),
        ),
        background=Background(offset=0.08, gradient=0.12, bumps=0.05),
        noise=Noise(photons=400.0, gaussian_sigma=4.0),
    )


def _stxm() -> SynthConfig:
    # Scanning transmission X-ray microscopy: coarse pixels (render at 1/6, resize up), some noise.
    return SynthConfig(
        name="stxm",
        blur_sigma=1.0,
        coarse_factor=6,
        wires=Wires(shape=Shape(taper=Dist(low=0.01, high=0.2), bend=Dist(low=0.005, high=0.04))),
        background=Background(offset=0.05, gradient=0.08),
        noise=Noise(gaussian_sigma=3.0),
    )


def _sem() -> SynthConfig:
    # Scanning electron microscopy: surface + edge contrast on a grey background, top wire hides lower.
    return SynthConfig(
        name="sem",
        blur_sigma=1.0,
        contrast=Contrast(mode="sem"),
        wires=Wires(shape=Shape(taper=Dist(low=0.01, high=0.2), bend=Dist(low=0.005, high=0.05), roughness=0.06)),
        background=Background(offset=0.35, gradient=0.06, bumps=0.03),
        noise=Noise(gaussian_sigma=6.0),
    )


PRESETS = {"ptychography": _ptychography, "realistic": _realistic, "stxm": _stxm, "sem": _sem}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_config(name: str, size: int = REFERENCE_SIZE) -> SynthConfig:
    """The named preset for ``size`` x ``size`` images (geometry scaled by size / 512)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed presets: {', '.join(sorted(PRESETS))}")
    if not 16 <= size <= 8192:
        raise ConfigError(f"size must be between 16 and 8192 pixels, got {size}")
    config = PRESETS[name]()
    return scale_to_size(config, size) if size != config.size else config


def scale_to_size(config: SynthConfig, size: int) -> SynthConfig:
    """The same scene at another image size: lengths, widths, radius and blur scale by size / config.size."""
    f = size / config.size
    wires = config.wires
    wires = wires.model_copy(update={
        "length": wires.length.scaled(f),
        "width": wires.width.scaled(f),
        "min_area_px": max(1, round(wires.min_area_px * f * f)),
        "agglomerates": wires.agglomerates.model_copy(update={"radius": wires.agglomerates.radius * f}),
    })
    contrast = config.contrast.model_copy(update={"full_scale": config.contrast.full_scale * f})
    return SynthConfig.model_validate({
        **config.model_dump(), "size": size, "wires": wires.model_dump(), "contrast": contrast.model_dump(),
        "blur_sigma": config.blur_sigma * f})


def magnify(config: SynthConfig, factor: float) -> SynthConfig:
    """The same kind of scene seen at ``factor`` x the magnification on the same frame size: wire lengths,
    widths, cluster radius, blur and the contrast's full scale (so a wire's grey level stays) grow by
    ``factor``; the wire count shrinks by factor^2 (the field of view's area), at least 2 to 4 wires."""
    if not 0.05 <= factor <= 20:
        raise ConfigError(f"magnification must be within 0.05..20, got {factor}")
    sized = scale_to_size(config, round(config.size * factor))
    count = config.wires.count
    low = max(2, round(count.min / factor ** 2))
    wires = sized.wires.model_copy(update={"count": CountRange(min=low, max=max(low + 2, round(count.max / factor ** 2)))})
    return sized.model_copy(update={"size": config.size, "wires": wires,
                                    "name": f"{config.name}@{factor:g}x"})


def with_overrides(config: SynthConfig, overrides: Mapping[str, Any], source: str = "overrides") -> SynthConfig:
    """A validated copy with ``overrides`` applied; keys may be dotted (``"wires.orientation.kappa": 4``)
    or nested mappings. An unknown key or bad value raises ``ConfigError`` naming it."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return validate(SynthConfig, deep_merge(config.model_dump(), nested), source)
