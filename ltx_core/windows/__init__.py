"""Long videos in overlapping temporal windows: the plan, the sampling loop, and extending a clip."""

from .extend import DEFAULT_CONTEXT_FRAMES, DIRECTIONS, Extension, extended_frames, plan_extension
from .long_video import DEFAULT_TEMPORAL_ADAIN_FACTOR, sample_long_video
from .plan import (
                   DEFAULT_OVERLAP_FRAMES,
                   DEFAULT_WINDOW_FRAMES,
                   MIN_WINDOW_FRAMES,
                   Window,
                   WindowPlan,
                   check_window_settings,
                   plan_windows,
                   route_conditions,
                   window_prompts,
)

__all__ = [
    "DEFAULT_CONTEXT_FRAMES",
    "DIRECTIONS",
    "DEFAULT_OVERLAP_FRAMES",
    "DEFAULT_TEMPORAL_ADAIN_FACTOR",
    "DEFAULT_WINDOW_FRAMES",
    "MIN_WINDOW_FRAMES",
    "Extension",
    "Window",
    "WindowPlan",
    "check_window_settings",
    "extended_frames",
    "plan_extension",
    "plan_windows",
    "route_conditions",
    "sample_long_video",
    "window_prompts",
]
