"""Value ranges every node shares for the same quantity, on the model's grid.

The Sampler, the one-node Text to Video and Save Video offer the same frames, frame rate and steps, and sizes step
by the 32 px the model works in (a size set by a link may be anything in range: it is padded to the grid and
cropped back).
"""

SIZE_GRID = 32
"""Width and height widgets step by this: the model generates multiples of 32 px."""
MIN_SIZE, MAX_SIZE = 32, 8192

MIN_FRAMES, MAX_FRAMES = 1, 2049
"""Frame counts; the model generates the next 8k+1 (9, 17, ..., 97, ...) and the nodes cut back."""

MIN_FRAME_RATE, MAX_FRAME_RATE, FRAME_RATE_STEP = 1.0, 120.0, 0.01

MIN_STEPS, MAX_STEPS = 1, 200
