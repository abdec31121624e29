"""Training crops prepared in worker processes, for a device (GPU) that trains faster than one core can crop.

Each sample is defined by one 63-bit seed drawn from the run's generator: the worker derives the image
index, the crop and the augmentation from it, so a batch depends only on its seeds, not on which worker
made it. Masks cross the process boundary bit-packed (8x smaller than bool arrays). Workers never import
torch: they read PNGs and COCO RLE with OpenCV, numpy and pycocotools.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch.train.data import Augmentation, CocoFolder, FolderMix, Sample, draw_sample

_worker: dict[str, Any] = {}


@dataclass(frozen=True)
class _Packed:
    image: np.ndarray
    bits: np.ndarray
    mask_shape: tuple[int, int, int]
    boxes: np.ndarray


def _init_worker(parts: list[tuple[str, float]], crop_size: int, min_area_px: int, aug: Augmentation) -> None:
    import cv2

    cv2.setNumThreads(1)  # one sample per process: OpenCV's own threads would only contend
    _worker.update(folder=FolderMix.open(parts, "train"), crop_size=crop_size, min_area_px=min_area_px, aug=aug)


def make_sample(folder: CocoFolder | FolderMix, seed: int, crop_size: int, min_area_px: int, aug: Augmentation) -> Sample:
    """The training sample that ``seed`` names (used by workers; callable in-process for tests)."""
    return draw_sample(folder, np.random.default_rng(seed), crop_size, min_area_px, aug)


def _packed_sample(seed: int) -> _Packed:
    s = make_sample(_worker["folder"], seed, _worker["crop_size"], _worker["min_area_px"], _worker["aug"])
    shape = (int(s.masks.shape[0]), int(s.masks.shape[1]), int(s.masks.shape[2]))
    return _Packed(s.image, np.packbits(s.masks.reshape(-1)), shape, s.boxes)


def _unpack(p: _Packed) -> Sample:
    n = p.mask_shape[0] * p.mask_shape[1] * p.mask_shape[2]
    masks = np.unpackbits(p.bits, count=n).astype(bool).reshape(p.mask_shape)
    return Sample(p.image, masks, p.boxes)


class ParallelBatches:
    """Batches of training samples made by ``workers`` processes, ``prefetch`` batches ahead.

    Batches drawn with the run's generator (``next_batch``) are queued ahead; the seeds of queued
    batches are already drawn, so a checkpoint taken mid-queue resumes with the following batches
    (the queued ones are skipped), not bit-identical to an uninterrupted run.
    """

    def __init__(self, parts: list[tuple[str, float]], crop_size: int, min_area_px: int, aug: Augmentation, workers: int,
                 batch_size: int, prefetch: int = 4) -> None:
        # forkserver: the parent may hold a CUDA context and torch's threads, which must not be forked.
        ctx = multiprocessing.get_context("forkserver")
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(parts, crop_size, min_area_px, aug))
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.queued: deque[list[Future[_Packed]]] = deque()

    def submit(self, seeds: Sequence[int] | np.ndarray) -> list[Future[_Packed]]:
        return [self.pool.submit(_packed_sample, int(s)) for s in seeds]

    def next_batch(self, rng: np.random.Generator) -> list[Sample]:
        """The next queued batch; tops the queue up with seeds drawn from ``rng``."""
        while len(self.queued) < self.prefetch + 1:
            self.queued.append(self.submit(rng.integers(0, 2**63, size=self.batch_size)))
        return [_unpack(f.result()) for f in self.queued.popleft()]

    def batch_now(self, rng: np.random.Generator) -> list[Sample]:
        """A batch from seeds of ``rng`` (a side generator, e.g. for BatchNorm statistics), not queued."""
        return [_unpack(f.result()) for f in self.submit(rng.integers(0, 2**63, size=self.batch_size))]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
