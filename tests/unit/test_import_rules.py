"""The import rules of issue 41 (``[tool.importlinter]`` in pyproject.toml, docs/CONTRACTS.md "Import rules"):
``lint-imports`` keeps every contract on the repository, and a planted violation breaks the contract it names
(so no contract is vacuous, e.g. through a misspelt module name)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ("cli-entry", "runtime-no-daemon", "stages-independent", "runtime-no-torch", "synth-only-simulate",
             "runtime-no-tools")


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``src`` first on the path (the package it analyses) and ``cwd``'s pyproject.toml."""
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def _counts(output: str) -> tuple[int, int]:
    found = re.search(r"Contracts: (\d+) kept, (\d+) broken", output)
    assert found, output
    return int(found[1]), int(found[2])


def test_the_repository_keeps_every_import_contract() -> None:
    result = _lint(ROOT / "src", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _counts(result.stdout) == (len(CONTRACTS), 0)


@pytest.mark.parametrize(("module", "planted", "broken"), [
    ("ingest/__init__.py", "import wirewatch.daemon.service", "No runtime package imports the daemon"),
    ("publish/__init__.py", "from wirewatch.stats import measure", "The stages import none of one another"),
    ("stats/__init__.py", "def _late() -> None:\n    import torch", "Nothing on the runtime path imports torch"),
    ("segment/__init__.py", "from wirewatch.synth import generate", "Among runtime packages only simulate"),
    ("web/__init__.py", "from wirewatch.bench import stats", "No runtime package imports evaluate, the benches"),
    ("types.py", "from wirewatch.cli import app", "cli is imported by nothing but __main__"),
])
def test_a_planted_import_breaks_its_contract(tmp_path: Path, module: str, planted: str, broken: str) -> None:
    """A copy of the package with one forbidden import added (lazy imports count too) breaks that contract."""
    shutil.copytree(ROOT / "src" / "wirewatch", tmp_path / "src" / "wirewatch",
                    ignore=shutil.ignore_patterns("__pycache__", "models", "static", "shipped"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "wirewatch" / module
    target.write_text(target.read_text() + f"\n{planted}\n")
    result = _lint(tmp_path / "src", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    importer = "wirewatch." + module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert f"{importer} -> " in result.stdout  # the planted edge is named in the report
    verdict = re.search(re.escape(broken) + r".*?\b(KEPT|BROKEN)\b", re.sub(r"\s+", " ", result.stdout))
    assert verdict and verdict[1] == "BROKEN", result.stdout
