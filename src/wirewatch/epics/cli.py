"""What ``wirewatch run --format pva`` / ``--pv-prefix`` and ``wirewatch simulate --format pva`` call.

Kept here so the hooks in ``cli/run.py`` and ``cli/simulate.py`` are a few lines each; p4p is imported
only when these run. ``wirewatch run`` passes ``pva_extensions(...)`` to the daemon it builds.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

from wirewatch.config.daemon import DaemonConfig
from wirewatch.epics.config import EpicsConfig
from wirewatch.errors import ConfigError
from wirewatch.extension import Extension

log = logging.getLogger(__name__)


def epics_config(cfg: DaemonConfig) -> EpicsConfig:
    """The ``epics`` section of a ``DaemonConfig``."""
    return cfg.epics


def require_p4p() -> None:
    try:
        import p4p  # noqa: F401
    except ImportError:
        raise ConfigError("PV Access needs the p4p package: pip install 'wirewatch[epics]'") from None


def pva_extensions(cfg: DaemonConfig, *, input_pv: str | None = None, pv_prefix: str | None = None,
                   require_input: bool = False) -> list[Extension]:
    """The daemon extensions for PV Access: ``PvaInput`` when ``input_pv`` (or ``epics.input.pv``) is given,
    ``PvaOutput`` (the PV server) when ``pv_prefix`` (or ``epics.server.prefix``) is; none without either.
    ``require_input`` (``--format pva``): a missing PV name is an error rather than the ZeroMQ input."""
    epics = epics_config(cfg)
    pv = input_pv or epics.input.pv
    prefix = pv_prefix or epics.server.prefix
    if require_input and pv is None:
        raise ConfigError("--format pva needs --input PV (the NTNDArray PV, e.g. 13SIM1:Pva1:Image) or "
                          "epics.input.pv in the config")
    try:
        from wirewatch.epics.config import check_pv_name

        for name, what in ((pv, "--input"), (prefix, "--pv-prefix")):
            if name is not None:
                check_pv_name(name, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if pv is None and prefix is None:
        return []
    require_p4p()
    from wirewatch.epics.daemon import PvaInput, PvaOutput

    extensions: list[Extension] = []
    if pv is not None:
        extensions.append(PvaInput(epics, pv=pv))
    if prefix is not None:
        extensions.append(PvaOutput(epics, prefix=prefix))
    return extensions


def simulate_pva(*, scenario: str, pv: str | None, rate: float, frames: int | None, truth: Path | None,
                 codec: str, echo: Any = print) -> None:
    """Serve the scenario as an areaDetector-like NTNDArray PV until done or SIGTERM / Ctrl-C."""
    if not pv:
        raise ConfigError("--format pva needs --pv NAME (e.g. 13SIM1:Pva1:Image)")
    require_p4p()
    from wirewatch.epics.simulator import PvaSimulator
    from wirewatch.simulate.scenario import resolve_scenario

    sc = resolve_scenario(scenario)
    # waits (at most 10 s) for a first client, so a daemon started just before misses no frame
    sim = PvaSimulator(sc, pv=pv, rate=rate, frames=frames, codec=codec, wait_for_client_s=10.0)
    if truth is not None:
        truth.parent.mkdir(parents=True, exist_ok=True)
        truth.write_text(json.dumps(sc.truth(sim.frames), indent=1) + "\n")
    conf = sim.open()
    echo(f"simulating {sim.frames} frames of scenario {sc.name!r} as NTNDArray PV {pv} (codec {codec}, "
         f"{rate:g} frames/s, PVA port {conf.get('EPICS_PVAS_SERVER_PORT', '?')}); true change points: "
         f"{list(sc.truth(sim.frames)['change_points'])}")
    signal.signal(signal.SIGTERM, lambda *_: sim.stop())
    try:
        result = sim.run()
    except KeyboardInterrupt:
        sim.stop()
        raise
    finally:
        sim.close()
    echo(f"sent {result.frames_sent} frames in {result.seconds:.1f} s")
