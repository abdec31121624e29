"""Real instrument-style files made with the libraries the readers use (tifffile, h5py, mrcfile,
RosettaSciIO), each holding ``bars`` bright bars (a known particle count for the watershed baseline)
and a sample pixel size in its own metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMATS = ("ome.tif", "nxs", "mrc", "emd", "tif")


def bars(count: int, size: int = 96, shift: int = 0) -> np.ndarray:
    """``count`` (1-5) separate horizontal bars, 6 x 50 px, as uint16."""
    img = np.zeros((size, size), np.uint16)
    for k in range(count):
        y = 6 + 17 * k
        img[y:y + 6, 10 + shift:60 + shift] = 1000
    return img


def write_file(path: Path, frames: np.ndarray, pixel_size_nm: float) -> Path:
    """One file of the format its name ends with; ``frames`` is (N, H, W)."""
    name = path.name
    if name.endswith(".ome.tif"):
        import tifffile

        tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX", "PhysicalSizeX": pixel_size_nm / 1000,
                                                          "PhysicalSizeXUnit": "µm"})
    elif name.endswith(".tif"):  # ImageJ hyperstack, unit nm
        import tifffile

        tifffile.imwrite(path, frames[0] if len(frames) == 1 else frames, imagej=True,
                         resolution=(1 / pixel_size_nm, 1 / pixel_size_nm), metadata={"unit": "nm"})
    elif name.endswith(".nxs"):
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs["default"] = "entry"
            entry = f.create_group("entry")
            entry.attrs["NX_class"] = "NXentry"
            entry.attrs["default"] = "data"
            data = entry.create_group("data")
            data.attrs.update({"NX_class": "NXdata", "signal": "data", "axes": [".", "y", "x"]})
            data["data"] = frames
            x = data.create_dataset("x", data=np.arange(frames.shape[2]) * pixel_size_nm / 1000)
            x.attrs["units"] = "um"
            data["y"] = np.arange(frames.shape[1]) * pixel_size_nm / 1000
            det = entry.create_group("instrument/detector")
            det.attrs["NX_class"] = "NXdetector"
            det["x_pixel_size"] = 75e-6  # the detector's pitch: must never be taken as the sample's
            det["x_pixel_size"].attrs["units"] = "m"
    elif name.endswith(".mrc"):
        import mrcfile

        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(frames.astype(np.float32))
            mrc.voxel_size = pixel_size_nm * 10  # angstrom
    elif name.endswith(".emd"):
        from rsciio.emd import file_writer

        axes = [{"name": "t", "size": frames.shape[0], "scale": 1.0, "offset": 0.0, "units": "s", "navigate": True},
                {"name": "y", "size": frames.shape[1], "scale": pixel_size_nm, "offset": 0.0, "units": "nm",
                 "navigate": False},
                {"name": "x", "size": frames.shape[2], "scale": pixel_size_nm, "offset": 0.0, "units": "nm",
                 "navigate": False}]
        file_writer(str(path), {"data": frames, "axes": axes, "metadata": {"General": {"title": name},
                                "Signal": {"signal_type": ""}}, "original_metadata": {}})
    else:
        raise ValueError(f"no writer for {name}")
    return path
