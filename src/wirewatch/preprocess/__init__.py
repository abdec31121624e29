"""Preprocessing: frame pixels to the segmenter convention (optical density, normalisation, NODATA mask).

Fitting large frames to the segmenter (resize, tile, ``scale``) is ``wirewatch.segment.fit.FitSegmenter``,
configured by this package's ``PreprocessConfig`` (``max_side``, ``fit``, ``tile_*``, ``merge_overlap``)."""

from wirewatch.preprocess.config import PreprocessConfig
from wirewatch.preprocess.normalise import Prepared, prepare
from wirewatch.preprocess.valid import restrict_to_valid

__all__ = ["Prepared", "PreprocessConfig", "prepare", "restrict_to_valid"]
