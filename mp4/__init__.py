"""Writing H.264 mp4 files from frames that arrive a chunk at a time (PyAV); no ComfyUI, no model code."""

from .writer import DEFAULT_CRF, X264_OPTIONS, Mp4Writer, frame_rate_fraction, leftover_parts, write_mp4

__all__ = ["DEFAULT_CRF", "X264_OPTIONS", "Mp4Writer", "frame_rate_fraction", "leftover_parts", "write_mp4"]
