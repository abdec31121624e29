"""``wirewatch simulate``: a microscope that streams synthetic frames following a scenario."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from wirewatch.cli.format_option import check_format


def simulate(
    endpoint: str = typer.Option("tcp://127.0.0.1:31001", "--endpoint", "-e", help="Where to bind (or connect); "
                                 "tcp://127.0.0.1:* picks a free port (printed)."),
    format: str = typer.Option("stream2", "--format", "-f", help="array-1.0 | stream2 | stream1 | pva (an EPICS "
                               "areaDetector-like NTNDArray PV named by --pv)."),
    rate: float = typer.Option(2.0, "--rate", help="Frames per second (0 = as fast as possible)."),
    frames: int | None = typer.Option(None, "--frames", "-n", help="Frames to send (default: the scenario's)."),
    scenario: str = typer.Option("demo", "--scenario", "-s", help="Scenario YAML file or shipped name "
                                 "(demo, growth, steady)."),
    truth: Path | None = typer.Option(None, "--truth", help="Write the true change points and each frame's truth here (truth.json)."),
    socket: str = typer.Option("push", "--socket", help="push (default) or pub."),
    connect: bool = typer.Option(False, "--connect", help="Connect to the endpoint instead of binding it."),
    compression: str = typer.Option("bslz4", "--compression", help="Stream V2 and pva: bslz4 | lz4 | none."),
    pv: str | None = typer.Option(None, "--pv", help="--format pva: the NTNDArray PV to serve, e.g. SIM:cam1:Pva1:Image."),
) -> None:
    """Stream synthetic nanowire frames whose morphology changes as the scenario says."""
    from wirewatch.errors import ConfigError
    from wirewatch.simulate.producer import Simulator
    from wirewatch.simulate.scenario import resolve_scenario

    check_format(format, input_kinds=("pva",))
    if socket not in ("push", "pub"):
        raise ConfigError(f"--socket must be push or pub, got {socket!r}")
    if compression not in ("bslz4", "lz4", "none"):
        raise ConfigError(f"--compression must be bslz4, lz4 or none, got {compression!r}")
    if format == "pva":  # EPICS PV Access (wirewatch.epics)
        from wirewatch.epics.cli import simulate_pva

        return simulate_pva(scenario=scenario, pv=pv, rate=rate, frames=frames, truth=truth, codec=compression,
                            echo=lambda text: typer.echo(text, err=True))
    sc = resolve_scenario(scenario)
    sim = Simulator(sc, endpoint=endpoint, format=format, rate=rate, frames=frames,
                    socket="pub" if socket == "pub" else "push", bind=not connect,
                    compression=None if compression == "none" else compression)
    if truth is not None:
        truth.parent.mkdir(parents=True, exist_ok=True)
        truth.write_text(json.dumps(sc.truth(sim.frames), indent=1) + "\n")
    resolved = sim.open()
    typer.echo(f"simulating {sim.frames} frames of scenario {sc.name!r} as {format} on {resolved} "
               f"({socket}, {rate:g} frames/s); true change points: {list(sc.truth(sim.frames)['change_points'])}",
               err=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sim.stop())
    try:
        result = sim.run()
    except KeyboardInterrupt:
        sim.stop()
        raise typer.Exit(130) from None
    finally:
        sim.close()
    typer.echo(f"sent {result.frames_sent} frames in {result.seconds:.1f} s", err=True)
    if truth is not None:  # now with what each frame sent holds (wirewatch.simulate.truth)
        from wirewatch.simulate.truth import truth_document

        truth.write_text(json.dumps(truth_document(sc, sim.frames, sim.sent_truth()), indent=1) + "\n")
