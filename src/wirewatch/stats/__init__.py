"""Particle statistics: per-particle descriptors and per-frame aggregates (``measure``).

Names of every column and aggregate are fixed in docs/CONTRACTS.md ("Statistic names").
"""

from wirewatch.stats.aggregates import aggregate_names, axial_orientation, frame_aggregates, summarise
from wirewatch.stats.descriptors import (
    PARTICLE_COLUMNS,
    ParticleTable,
    check_pixel_size,
    particle_descriptors,
)
from wirewatch.stats.measure import MeasuredDetections, masks_from_labels, measure, measure_detections
from wirewatch.stats.tables import json_safe, particle_rows, write_csv, write_json

__all__ = [
    "PARTICLE_COLUMNS",
    "MeasuredDetections",
    "ParticleTable",
    "aggregate_names",
    "axial_orientation",
    "check_pixel_size",
    "frame_aggregates",
    "json_safe",
    "masks_from_labels",
    "measure",
    "measure_detections",
    "particle_descriptors",
    "particle_rows",
    "summarise",
    "write_csv",
    "write_json",
]
