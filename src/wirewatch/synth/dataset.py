"""Write a synthetic COCO dataset folder (layout in docs/CONTRACTS.md), deterministically and safely.

``DIR/images/000000.png ...``, optional ``DIR/od/000000.tif``, ``DIR/train.json`` + ``DIR/val.json``
(or ``DIR/all.json`` without a split), optional ``DIR/preview.png``, and ``DIR/manifest.json`` last.
Every file goes to a temporary name first and is renamed into place, and the manifest is
written last, so an interrupted run never looks complete. Image ``i`` is rendered from a seed
derived from (seed, i) only, so the files do not depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wirewatch import __version__, coco
from wirewatch.errors import ConfigError, InputError
from wirewatch.files import write_bytes_atomically
from wirewatch.synth.config import SynthConfig
from wirewatch.synth.generate import Sample, generate

MANIFEST = "manifest.json"
FORMAT = "wirewatch-synth/1"
_OWNED = ("images", "od", "train.json", "val.json", "all.json", "preview.png")


def sample_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` in a dataset made with ``seed`` (independent of workers)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def image_name(index: int) -> str:
    return f"{index:06d}.png"


def split_counts(count: int, split: float | None) -> tuple[int, int]:
    """(train, val) sizes: the first ``round(count * split)`` images are train, the rest val."""
    if split is None:
        return count, 0
    n_train = round(count * split)
    if count > 1:
        n_train = min(max(n_train, 1), count - 1)  # both parts non-empty when there is anything to split
    return n_train, count - n_train


def encode_png(image: np.ndarray) -> bytes:
    # zlib level 1 with the run-length strategy: ~40 % faster than the default on noisy frames, smaller too.
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                           cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:  # pragma: no cover - cv2 fails only on unsupported dtypes
        raise InputError("PNG encoding failed")
    return buf.tobytes()


def encode_tiff(od: np.ndarray) -> bytes:
    import io

    import tifffile

    buf = io.BytesIO()
    # No datetime, no software tag: identical arrays give identical bytes.
    tifffile.imwrite(buf, od.astype(np.float32), photometric="minisblack", software=None, datetime=None,
                     metadata=None)
    return buf.getvalue()


def wire_extras(sample: Sample, i: int) -> dict[str, Any]:
    """Per-wire ground truth stored next to each annotation (extra COCO keys)."""
    w = sample.wires[i]
    return {"wire": {
        "length_px": round(w.length, 4), "projected_length_px": round(w.projected_length, 4),
        "width_px": round(w.width, 4), "thickness_px": round(w.thickness, 4),
        "angle_deg": round(w.angle_deg, 4), "cross_section": w.cross_section, "tilt_deg": round(w.tilt_deg, 4),
        "centre_x": round(w.centre[0], 4), "centre_y": round(w.centre[1], 4),
    }}


def window_rle(mask: np.ndarray, window: tuple[int, int, int, int]) -> tuple[dict[str, Any], list[float], int]:
    """(COCO compressed RLE, bbox, area) of a full-frame mask that is False outside ``window``.

    Same result as ``coco.encode_mask`` / ``coco.mask_bbox`` but it touches only the window:
    column-major runs are found in the crop and pycocotools compresses them.
    """
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    r0, r1, c0, c1 = window
    crop = mask[r0:r1, c0:c1]
    cols = np.zeros((c1 - c0, r1 - r0 + 2), np.int8)  # one column per row, zero-padded at both ends
    cols[:, 1:-1] = crop.T
    dc, dr = np.nonzero(np.diff(cols, axis=1))
    # Transitions in column-major order of the full frame: index = column * h + row.
    edges = (c0 + dc).astype(np.int64) * h + r0 + dr
    starts, ends = edges[0::2], edges[1::2]
    if len(starts):
        joined = starts[1:] == ends[:-1]  # a run ending at a column's bottom continuing at the next's top
        if joined.any():
            starts = np.concatenate([starts[:1], starts[1:][~joined]])
            ends = np.concatenate([ends[:-1][~joined], ends[-1:]])
    bounds = np.empty(2 * len(starts) + 2, np.int64)
    bounds[0], bounds[-1] = 0, h * w
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds).tolist()
    if len(counts) > 1 and counts[-1] == 0:
        counts.pop()  # pycocotools ends at the last run when it reaches the frame's end
    rle = mask_utils.frPyObjects({"counts": counts, "size": [h, w]}, h, w)
    rle["counts"] = rle["counts"].decode("ascii")
    rows = np.flatnonzero(crop.any(axis=1))
    colsx = np.flatnonzero(crop.any(axis=0))
    if len(rows) == 0:
        return rle, [0.0, 0.0, 0.0, 0.0], 0
    x0, y0 = float(c0 + colsx[0]), float(r0 + rows[0])
    bbox = [x0, y0, float(c0 + colsx[-1]) + 1.0 - x0, float(r0 + rows[-1]) + 1.0 - y0]
    return rle, bbox, int(np.count_nonzero(crop))


def sample_annotations(sample: Sample, image_id: int, first_ann_id: int) -> list[dict[str, Any]]:
    """COCO annotations of every wire (same dicts as ``coco.annotation``, plus ``wire`` ground truth)."""
    out = []
    for i in range(len(sample.wires)):
        if sample.windows:
            rle, bbox, area = window_rle(sample.masks[i], sample.windows[i])
            ann = {"id": first_ann_id + i, "image_id": image_id, "category_id": coco.CATEGORY["id"],
                   "segmentation": rle, "area": area, "bbox": bbox, "iscrowd": 0, **wire_extras(sample, i)}
        else:
            ann = coco.annotation(first_ann_id + i, image_id, sample.masks[i], **wire_extras(sample, i))
        out.append(ann)
    return out


# Worker state: set once per process (fork or spawn) by _init.
_JOB: dict[str, Any] = {}


def _init(out_dir: str, config_json: str, seed: int, tiff: bool, pooled: bool = False) -> None:
    if pooled:
        cv2.setNumThreads(1)  # one process per core already: OpenCV threads would only oversubscribe
    _JOB.update(out=Path(out_dir), config=SynthConfig.model_validate_json(config_json), seed=seed, tiff=tiff)


def _render_one(index: int) -> tuple[int, list[dict[str, Any]], int]:
    """Render image ``index``, write its files, return its annotations (ids filled in later)."""
    out: Path = _JOB["out"]
    cfg: SynthConfig = _JOB["config"]
    sample = generate(cfg, sample_seed(_JOB["seed"], index))
    write_bytes_atomically(out / "images" / image_name(index), encode_png(sample.image))
    if _JOB["tiff"]:
        write_bytes_atomically(out / "od" / f"{index:06d}.tif", encode_tiff(sample.od))
    anns = sample_annotations(sample, index + 1, 0)
    return index, anns, len(sample.wires)


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _pool_context() -> Any:
    # Plain fork is fastest but unsafe once the parent runs threads (OpenCV's or torch's pool):
    # a forked child can deadlock on their locks. Then fork from a clean forkserver instead
    # (like spawn, it needs the calling script's code under ``if __name__ == "__main__":``).
    methods = mp.get_all_start_methods()
    if "fork" in methods and _single_threaded():
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["wirewatch.synth.dataset"])
        return ctx
    return mp.get_context("spawn")


def _imap(workers: int, out_dir: Path, config: SynthConfig, seed: int, tiff: bool,
          count: int) -> Iterator[tuple[int, list[dict[str, Any]], int]]:
    args = (str(out_dir), config.model_dump_json(), seed, tiff)
    if workers <= 1:
        _init(*args)
        yield from map(_render_one, range(count))
        return
    ctx = _pool_context()
    with ctx.Pool(workers, initializer=_init, initargs=(*args, True)) as pool:
        yield from pool.imap(_render_one, range(count), chunksize=max(1, min(16, count // (workers * 8) or 1)))


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """An existing non-empty folder is refused unless ``overwrite``; then our own files are removed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(f"--out {out_dir} is not empty; pass --overwrite to replace a dataset there")
        (out_dir / MANIFEST).unlink(missing_ok=True)  # first: the folder stops looking complete
        for name in _OWNED:
            p = out_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def write_dataset(out_dir: str | Path, config: SynthConfig, count: int, seed: int, workers: int = 1,
                  split: float | None = 0.8, *, tiff: bool = False, preview: str | Path | None = None,
                  overwrite: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Render ``count`` images into ``out_dir``; returns the manifest dict.

    ``split`` is the train fraction (None: one ``all.json``). ``preview``: also write a contact
    sheet there (a relative path is inside ``out_dir``). ``progress(done, count)`` is called as
    images finish.
    """
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if split is not None and not 0.0 < split < 1.0:
        raise ConfigError(f"--split must be between 0 and 1 (exclusive), got {split}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    out = Path(out_dir)
    check_out_dir(out, overwrite)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if tiff:
        (out / "od").mkdir(exist_ok=True)
    n = config.size
    images: list[dict[str, Any]] = []
    per_image: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for done, (index, anns, _) in enumerate(_imap(min(workers, count), out, config, seed, tiff, count), 1):
        per_image[index] = anns
        if progress is not None:
            progress(done, count)
    for index in range(count):
        # ``seed``: generate(config, seed) re-renders this image in memory (COCO tools ignore the key).
        images.append({"id": index + 1, "file_name": image_name(index), "width": n, "height": n,
                       "seed": sample_seed(seed, index)})
    n_train, n_val = split_counts(count, split)
    info = {"description": f"wirewatch synthetic nanowires, preset {config.name}", "version": __version__,
            "seed": seed}
    parts = {"train": range(0, n_train), "val": range(n_train, count)} if split is not None else \
        {"all": range(count)}
    ann_id = 1
    for name, idx in parts.items():
        anns_out = []
        for i in idx:
            for a in per_image[i]:
                anns_out.append({**a, "id": ann_id})
                ann_id += 1
        data = coco.dataset([images[i] for i in idx], anns_out, info={**info, "split": name})
        write_bytes_atomically(out / f"{name}.json", json.dumps(data, separators=(",", ":")).encode())
    if preview is not None:
        from wirewatch.synth.preview import write_preview

        ppath = Path(preview)
        write_preview(ppath if ppath.is_absolute() else out / ppath, config, seed)
    manifest = {
        "format": FORMAT,
        "package": "wirewatch",
        "package_version": __version__,
        "seed": seed,
        "count": count,
        "size": n,
        "split": split,
        "counts": {"train": n_train, "val": n_val} if split is not None else {"all": count},
        "annotations": ann_id - 1,
        "files": {"images": "images", "od": "od" if tiff else None,
                  "coco": [f"{name}.json" for name in parts]},
        "config": config.model_dump(mode="json"),
    }
    write_bytes_atomically(out / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest of a complete dataset folder (InputError when absent: incomplete or not a dataset)."""
    p = Path(out_dir) / MANIFEST
    if not p.is_file():
        raise InputError(f"{out_dir} holds no {MANIFEST}: not a complete synthetic dataset")
    return dict(json.loads(p.read_text()))
