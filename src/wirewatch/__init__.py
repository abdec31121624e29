"""wirewatch: real-time nanowire segmentation and change-point monitoring beside an in-situ microscope."""

__version__ = "0.1.0"
