"""Value ranges every node shares for the same quantity, on the model's grid.

The Sampler, the one-node Text to Video and Save Video offer the same frames, frame rate and steps, and sizes step
by the 32 px the model works in (a size set by a link may be anything in range: it is padded to the grid and
cropped back).
"""

from ..ltx_core.models.grid import MAX_FRAMES, MAX_SIZE, MIN_FRAMES, MIN_SIZE, PIXELS_PER_LATENT

SIZE_GRID = PIXELS_PER_LATENT
"""Width and height widgets step by this: the model generates multiples of 32 px. Frame counts (`MIN_FRAMES`,
`MAX_FRAMES`) are any: the model generates the next 8k+1 (9, 17, ..., 97, ...) and the nodes cut back."""

MIN_FRAME_RATE, MAX_FRAME_RATE, FRAME_RATE_STEP = 1.0, 120.0, 0.01

MIN_STEPS, MAX_STEPS = 1, 200
