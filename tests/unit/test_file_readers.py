"""File readers of the watched folder on real files written by the same libraries: frames, the sample
pixel size from the file's own metadata (never a detector field), truncated files as ``truncated``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.system.folder_files import FORMATS, bars, write_file
from wirewatch.errors import DecodeError
from wirewatch.ingest.readers import READERS, read_file


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_its_frames_and_sample_pixel_size(tmp_path: Path, fmt: str) -> None:
    frames = np.stack([bars(2), bars(3)])
    path = write_file(tmp_path / f"a.{fmt}", frames, pixel_size_nm=2.5)
    got = read_file(path)
    assert len(got.frames) == 2
    for want, have in zip(frames, got.frames, strict=True):
        np.testing.assert_array_equal(np.asarray(have, dtype=np.float64), want.astype(np.float64))
    assert got.pixel_size_nm == pytest.approx(2.5, rel=1e-6)
    assert got.pixel_size_from  # says where it came from (the daemon logs it)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fraction", [0.2, 0.6, 0.97])
def test_a_file_cut_short_is_refused_as_truncated(tmp_path: Path, fmt: str, fraction: float) -> None:
    full = write_file(tmp_path / f"full.{fmt}", np.stack([bars(2), bars(3), bars(1)]), pixel_size_nm=2.0)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DecodeError) as err:
        read_file(cut)
    assert err.value.kind == "truncated", str(err.value)


def test_nexus_ignores_the_detector_pixel_and_takes_a_named_dataset(tmp_path: Path) -> None:
    import h5py

    path = write_file(tmp_path / "scan.nxs", np.stack([bars(1)]), pixel_size_nm=4.0)
    got = read_file(path)
    assert got.pixel_size_nm == pytest.approx(4.0)  # NXdata axis spacing, not the detector's 75 um
    with h5py.File(path, "a") as f:
        f["/entry/other"] = np.stack([bars(4), bars(5)])
        del f["/entry/data/x"]  # no axis calibration left in the NXdata
    named = read_file(path, {"dataset": "/entry/other"})
    assert len(named.frames) == 2 and named.pixel_size_nm is None  # never the detector's x_pixel_size
    assert read_file(path).pixel_size_nm is None
    with pytest.raises(DecodeError, match="no dataset '/entry/missing'") as err:
        read_file(path, {"dataset": "/entry/missing"})
    assert err.value.kind == "no_image"


def test_hdf5_without_nexus_default_asks_for_the_dataset(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.stack([bars(1)])
    with pytest.raises(DecodeError, match=r"ingest\.watch\.dataset"):
        read_file(path)
    assert len(read_file(path, {"dataset": "images"}).frames) == 1


def test_tiff_print_resolution_is_not_a_pixel_size(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, bars(2), resolution=(72, 72), resolutionunit="INCH")
    assert read_file(path).pixel_size_nm is None
    tifffile.imwrite(path, bars(2), resolution=(1e7 / 5, 1e7 / 5), resolutionunit="CENTIMETER")  # 5 nm pixels
    assert read_file(path).pixel_size_nm == pytest.approx(5.0)


def test_unknown_suffix_names_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.xyz"
    path.write_bytes(b"0" * 10)
    with pytest.raises(DecodeError, match=r"\.mrc") as err:
        read_file(path)
    assert err.value.kind == "unsupported"
    assert {".tif", ".nxs", ".h5", ".mrc", ".dm3", ".dm4", ".emd"} <= set(READERS)



def test_a_missing_library_is_refused_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path / "a.mrc", np.stack([bars(1)]), 1.0)
    monkeypatch.setitem(sys.modules, "mrcfile", None)  # as if not installed
    with pytest.raises(DecodeError, match=r"wirewatch\[files\]") as err:
        read_file(path)
    assert err.value.kind == "unsupported"
