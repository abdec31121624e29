"""Optional extras: a command whose extra is not installed stops with one line naming it (``wirewatch.extras``).

The missing library is made missing for real: a subprocess whose import system refuses it, as in a venv
installed without that extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from wirewatch.errors import MissingExtra
from wirewatch.extras import missing, require

# run in the child before anything else: the named top-level packages (and their submodules) cannot be imported
_BLOCK = textwrap.dedent("""
    import sys
    from importlib.abc import MetaPathFinder

    class Missing(MetaPathFinder):
        def __init__(self, names):
            self.names = set(names)

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Missing(sys.argv[1].split(",")))
    for loaded in [m for m in sys.modules if m.split(".")[0] in sys.argv[1].split(",")]:
        del sys.modules[loaded]
    sys.argv = ["wirewatch", *sys.argv[2:]]
    from wirewatch.cli.app import main
    main()
""")


def _wirewatch_without(modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCK, modules, *args], capture_output=True, text=True, timeout=120)


def _record(path: Path, frames: int = 60) -> Path:
    rng = np.random.default_rng(3)
    with path.open("w") as handle:
        for frame in range(frames):
            count = 20 + (10 if frame >= frames // 2 else 0) + rng.normal()
            handle.write(json.dumps({"frame": frame, "time": 1.7e9 + frame, "series": "s1",
                                     "stats": {"particle_count": count}}) + "\n")
    return path


def test_a_command_without_the_plots_extra_names_it(tmp_path: Path) -> None:
    record, png = _record(tmp_path / "run.jsonl"), tmp_path / "cps.png"
    done = _wirewatch_without("matplotlib", "changepoints", str(record), "--stats", "particle_count", "--plot", str(png))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ")  # one line: which library, which extra
    assert "needs matplotlib, which is not installed: pip install 'wirewatch[plots]'" in done.stderr
    assert "Traceback" not in done.stderr and not png.exists()
    # the same command with matplotlib installed writes the figure (the block above is what made it fail)
    plain = subprocess.run([sys.executable, "-m", "wirewatch", "changepoints", str(record), "--stats", "particle_count",
                            "--plot", str(png)], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_names_the_extra_of_any_missing_library() -> None:
    """A library of an extra imported without a guard of its own still gives the one-line message (exit 2)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, typer
        from wirewatch.cli import app as cli

        @cli.app.command("needs-onnxruntime")
        def needs() -> None:
            raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

        sys.argv = ["wirewatch", "needs-onnxruntime"]
        cli.main()
    """)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("error: this command needs onnxruntime, which is not installed: "
                                   "pip install 'wirewatch[cpu]' (or 'wirewatch[gpu]' on an NVIDIA GPU)")


def test_require_and_missing() -> None:
    assert require("json", "anything") is json
    error = missing("pyarrow.parquet", "particle tables")
    assert isinstance(error, MissingExtra) and error.extra == "particles" and error.module == "pyarrow"
    assert str(error) == "particle tables needs pyarrow, which is not installed: pip install 'wirewatch[particles]'"
    assert missing("no_such_library_anywhere", "x") is None  # not an extra's: the plain ImportError is kept
    with pytest.raises(ModuleNotFoundError):
        require("no_such_library_anywhere", "x")


def test_an_upload_without_the_plots_extra_is_answered_without_histograms() -> None:
    code = _BLOCK.split("sys.argv = [")[0] + textwrap.dedent("""
        import json
        import numpy as np
        from wirewatch.segment import load_segmenter
        from wirewatch.web.upload import segment_upload

        image = np.full((96, 96), 40, np.uint8)
        image[20:28, 10:80] = 200  # one bright rod
        answer = segment_upload(load_segmenter("watershed"), image)
        print(json.dumps({"histograms": "histograms_png" in answer, "error": answer.get("histograms_error"),
                          "overlay": bool(answer["overlay_png"]), "detections": answer["detections"]}))
    """)
    done = subprocess.run([sys.executable, "-c", code, "matplotlib"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["histograms"] is False and answer["overlay"] and answer["detections"] >= 1
    assert "pip install 'wirewatch[plots]'" in answer["error"]
