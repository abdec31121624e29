"""Preprocessing: frame pixels to the segmenter convention, and fitting large frames to the segmenter."""

from wirewatch.preprocess.config import PreprocessConfig
from wirewatch.preprocess.fit import FitSegmenter, restrict_to_valid, tile_origins
from wirewatch.preprocess.normalise import Prepared, prepare

__all__ = ["FitSegmenter", "Prepared", "PreprocessConfig", "prepare", "restrict_to_valid", "tile_origins"]
