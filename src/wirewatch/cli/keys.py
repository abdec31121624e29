"""``wirewatch keys generate``: ZeroMQ CURVE certificate pairs for the encrypted input and outputs."""

from __future__ import annotations

from pathlib import Path

import typer

keys_app = typer.Typer(help="ZeroMQ CURVE keys for the frame input (ingest.curve) and the PUB output "
                       "(publish.zmq.curve).", no_args_is_help=True)


@keys_app.command("generate")
def generate(
    name: str = typer.Argument(..., help="Certificate name, e.g. daemon, detector, grafana-bridge."),
    directory: Path = typer.Option(Path("."), "--dir", "-d", help="Folder to write NAME.key and NAME.key_secret."),
    force: bool = typer.Option(False, "--force", help="Replace existing files of that name."),
) -> None:
    """Write NAME.key (public: give it to the peer) and NAME.key_secret (private, mode 0600)."""
    from wirewatch.security import generate_curve_keypair

    public, secret = generate_curve_keypair(directory, name, overwrite=force)
    typer.echo(f"public key: {public}  (give this to the other side)")
    typer.echo(f"secret key: {secret}  (mode 0600; keep it on this machine)")
