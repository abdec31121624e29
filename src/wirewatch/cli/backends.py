"""Choosing and loading a segmenter backend from command-line flags (``--backend``, ``--model``, ``--option``),
shared by ``segment``, ``evaluate``, ``serve`` and the benches so that every command reads the flags alike.

``--backend auto`` follows the daemon's rule (``wirewatch.daemon.build.resolve_backend``): the shipped model
with onnxruntime when both are installed, else the watershed baseline.
"""

from __future__ import annotations

from typing import Any

from wirewatch.segment.base import Segmenter


def parse_options(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings -> dict, values parsed as YAML scalars (numbers, booleans, null)."""
    import yaml

    from wirewatch.errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def resolve_cli_backend(backend: str, model: str | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(backend name, options with ``model``) for ``--backend``; ``auto`` as the daemon decides it."""
    if backend == "auto":
        from wirewatch.config.daemon import SegmentConfig
        from wirewatch.daemon.build import resolve_backend

        return resolve_backend(SegmentConfig(backend="auto", model=model, options=options))
    return backend, {"model": model or "default", **options}


def open_segmenter(backend: str, model: str | None, options: dict[str, Any], *,
                   pixel_size_nm: float | None = None) -> tuple[Segmenter, str]:
    """(segmenter, backend name it resolved to): the backend with the model behind the daemon's resize / scale /
    tile path (``FitSegmenter``: frames over 1024 px resized, ``scale`` option: auto for models); a missing
    backend module or a bad option is a clear error."""
    from wirewatch.errors import BackendUnavailable, InputError
    from wirewatch.segment.fit import load_fitted_segmenter

    name, resolved = resolve_cli_backend(backend, model, options)
    try:
        return load_fitted_segmenter(name, resolved, pixel_size_nm=pixel_size_nm), name
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(f"segmenter backend {name!r} is not available here: {exc}") from None
    except TypeError as exc:
        raise InputError(f"backend {name!r} rejected its options {sorted(options)}: {exc}") from None
