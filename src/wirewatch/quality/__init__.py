"""Know when to distrust the numbers: segmentation reliability, image quality, and the attribution of
change points to the instrument or the sample (docs/stats.md, "Reliability and attribution")."""

from wirewatch.quality.image import IQ_NAMES, ImageQuality, blur_sigma_px
from wirewatch.quality.monitor import QualityConfig, QualityMonitor
from wirewatch.quality.reliability import Reliability, model_free_foreground, score_frame

__all__ = ["IQ_NAMES", "ImageQuality", "QualityConfig", "QualityMonitor", "Reliability", "blur_sigma_px",
           "model_free_foreground", "score_frame"]
