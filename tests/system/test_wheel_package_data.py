"""The shipped config and scenarios travel in the wheel: found from an installed package, not the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from wirewatch.config.daemon import load_daemon_config, shipped_config_path
from wirewatch.simulate.scenario import SCENARIO_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_package_data_in_a_checkout() -> None:
    import wirewatch

    package = Path(wirewatch.__file__).resolve().parent
    assert shipped_config_path().is_file() and (SCENARIO_DIR / "demo.yaml").is_file()
    # found through the package (config/shipped links to the repository's config/), not parents[3]
    assert shipped_config_path().parent == package / "config" / "shipped"
    assert shipped_config_path().resolve() == (ROOT / "config" / "default.yaml").resolve()
    load_daemon_config(shipped_config_path())


def test_installed_wheel_finds_its_shipped_config(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(ROOT), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        pytest.fail(f"pip wheel failed: {out.stderr[-2000:]}")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(target)
    assert "wirewatch/config/shipped/default.yaml" in names
    assert "wirewatch/config/shipped/scenarios/demo.yaml" in names
    # Run from a folder outside the checkout with only the unpacked wheel on the path for wirewatch.
    code = ("import wirewatch, sys; from wirewatch.config.daemon import shipped_config_path, load_daemon_config; "
            "from wirewatch.simulate.scenario import SCENARIO_DIR; p = shipped_config_path(); "
            "assert p.is_file(), p; load_daemon_config(p); assert (SCENARIO_DIR / 'demo.yaml').is_file(); "
            "print(wirewatch.__file__); print(p)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    module_file, config_file = res.stdout.split()
    assert module_file.startswith(str(target)) and config_file.startswith(str(target))
