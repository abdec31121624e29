"""HDF5 and NeXus through ``h5py``: frames along the first axis of one dataset.

The dataset is ``options["dataset"]`` when given (``ingest.watch.dataset``), else the NeXus default
plot: the root's ``default`` entry, its ``default`` ``NXdata`` group, that group's ``signal`` dataset
(the first ``NXdata`` with a ``signal`` when the ``default`` chain is missing). Sample pixel size: the
spacing of the ``NXdata``'s last axis coordinates (``axes`` attribute, with ``units``). Nothing under
an ``NXdetector`` (its ``x_pixel_size`` is the detector pitch) is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError

from .base import FileImages, as_frames, to_nm

SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".cxi")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
    return str(value)


def _nx_class(obj: Any) -> str:
    return _text(obj.attrs.get("NX_class", ""))


def _default_nxdata(f: Any) -> Any | None:
    """The NXdata group of the NeXus default plot, else the first NXdata with a signal."""
    group = f
    for _ in range(3):  # root -> entry -> (subentry ->) data
        name = group.attrs.get("default")
        if name is None or _text(name) not in group:
            break
        group = group[_text(name)]
        if _nx_class(group) == "NXdata":
            return group
    found: list[Any] = []

    def visit(_name: str, obj: Any) -> None:
        if not found and hasattr(obj, "attrs") and _nx_class(obj) == "NXdata" and "signal" in obj.attrs:
            found.append(obj)

    f.visititems(visit)
    return found[0] if found else None


def _axis_pixel_size(nxdata: Any, ndim: int) -> tuple[float | None, str | None]:
    axes = nxdata.attrs.get("axes")
    if axes is None:
        return None, None
    names = [_text(a) for a in (axes if isinstance(axes, np.ndarray | list | tuple) else [axes])]
    if len(names) < 1 or names[-1] in (".", "") or names[-1] not in nxdata:
        return None, None
    coords = np.asarray(nxdata[names[-1]][()], dtype=np.float64).reshape(-1)
    if coords.size < 2:
        return None, None
    nm = to_nm(abs(float(coords[1] - coords[0])), nxdata[names[-1]].attrs.get("units"))
    return nm, (f"NXdata axis {names[-1]!r} spacing" if nm is not None else None)


def read(path: Path, options: dict[str, Any]) -> FileImages:
    import h5py

    dataset_path = options.get("dataset")
    try:
        with h5py.File(path, "r") as f:
            nxdata = None
            if dataset_path:
                if dataset_path not in f:
                    raise DecodeError("no_image", f"{path.name} has no dataset {dataset_path!r}")
                ds = f[dataset_path]
            else:
                nxdata = _default_nxdata(f)
                if nxdata is None:
                    raise DecodeError("no_image", f"{path.name}: no NeXus default NXdata signal; set "
                                      "ingest.watch.dataset to the dataset path (e.g. /entry/data/data)")
                ds = nxdata[_text(nxdata.attrs["signal"])]
            if not isinstance(ds, h5py.Dataset):
                raise DecodeError("no_image", f"{path.name}: {ds.name} is a group, not a dataset")
            data = ds[()]
            if nxdata is None and ds.parent is not None and _nx_class(ds.parent) == "NXdata":
                nxdata = ds.parent
            nm, source = _axis_pixel_size(nxdata, np.ndim(data)) if nxdata is not None else (None, None)
    except DecodeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        text = str(exc).lower()
        kind = "truncated" if ("truncat" in text or "eof" in text or "signature" in text) else "unreadable"
        raise DecodeError(kind, f"cannot read HDF5 {path.name}: {exc}") from None
    return FileImages(frames=as_frames(np.squeeze(np.asarray(data)) if np.ndim(data) > 3 else data, path),
                      pixel_size_nm=nm, pixel_size_from=source)
