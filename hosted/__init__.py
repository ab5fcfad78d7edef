"""The hosted service's parameters, shared by the nodes and the API (see `defaults`)."""

from .defaults import (
                       ASPECT_RATIOS,
                       DEFAULT_ASPECT_RATIO,
                       DEFAULT_FRAME_RATE,
                       DEFAULT_FRAMES,
                       DEFAULT_NEGATIVE_PROMPT,
                       DEFAULT_RESOLUTION,
                       DEFAULT_STEPS,
                       FRAME_RATE_RANGE,
                       FRAMES_RANGE,
                       MAX_SEED,
                       RESOLUTIONS,
                       STEPS_RANGE,
                       VIDEO_SIZES,
)

__all__ = ["ASPECT_RATIOS", "DEFAULT_ASPECT_RATIO", "DEFAULT_FRAME_RATE", "DEFAULT_FRAMES", "DEFAULT_NEGATIVE_PROMPT",
           "DEFAULT_RESOLUTION", "DEFAULT_STEPS", "FRAME_RATE_RANGE", "FRAMES_RANGE", "MAX_SEED", "RESOLUTIONS",
           "STEPS_RANGE", "VIDEO_SIZES"]
