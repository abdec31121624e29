"""Optional extras: which ``pip install 'wirewatch[EXTRA]'`` brings which library.

The daemon's own dependencies are always installed; the model runtime (``cpu`` or ``gpu``, never both:
onnxruntime and onnxruntime-gpu install the same module), plotting, training and the optional inputs and
outputs are extras (README, "Install"). A command that reaches for a missing one fails with
``MissingExtra`` naming the extra, which ``wirewatch`` prints as one ``error:`` line (exit code 2).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wirewatch.errors import MissingExtra

# top-level module -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "onnxruntime": "cpu",  # or onnxruntime-gpu from the gpu extra: the same module
    "tensorrt": "gpu",
    "matplotlib": "plots",
    "torch": "train",
    "torchvision": "train",
    "onnx": "train",
    "p4p": "epics",
    "pyarrow": "particles",
    "tiled": "tiled",
    "tenacity": "tiled",
    "ray": "ray",
    "watchdog": "files",
    "h5py": "files",
    "mrcfile": "files",
    "rsciio": "files",
}


def missing(module: str, needed_for: str) -> MissingExtra | None:
    """The error to raise when ``module`` (a dotted name is fine) is not installed, or None for a module
    no extra brings."""
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    alternative = " (or 'wirewatch[gpu]' on an NVIDIA GPU)" if extra == "cpu" else ""
    return MissingExtra(f"{needed_for} needs {top}, which is not installed: pip install 'wirewatch[{extra}]'"
                        f"{alternative}", module=top, extra=extra)


def require(module: str, needed_for: str) -> ModuleType:
    """``importlib.import_module(module)``, or ``MissingExtra`` naming the extra when it is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        error = missing(exc.name or module, needed_for)
        if error is None:
            raise
        raise error from None
