"""What the hosted fal service `fal-ai/ltx-video-lora` fixes: its model files, defaults, video sizes, aspect ratios and
ranges.

The one-node Text to Video (`nodes/`) offers the service's parameters with the service's defaults, and the API
(`service/`) validates requests against them, so both import them from here. Plain Python with no imports: `nodes/`
must not import `service/` (whose package pulls in ComfyUI's server), and `service/` stays importable without
ComfyUI, so neither of them can own these values.
"""

CHECKPOINT_FILE = "ltxv-13b-0.9.7-dev.safetensors"
"""The model files the hosted service runs: the API's defaults, and the files the nodes' tooltips and errors name."""
UPSAMPLER_FILE = "ltxv-spatial-upscaler-0.9.7.safetensors"
"""The spatial latent upsampler the multi-scale recipes need."""
TEXT_ENCODER_FILE = "t5xxl_fp16.safetensors"

DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, low resolution, inconsistent motion, jittery, distorted"

VIDEO_SIZES = {
    "480p": {"16:9": (848, 480), "1:1": (480, 480), "9:16": (480, 848)},
    "720p": {"16:9": (1280, 720), "1:1": (720, 720), "9:16": (720, 1280)},
}
"""(width, height) per resolution and aspect ratio; generated on the model's ×32 / 8k+1 grid and cropped back."""
RESOLUTIONS = tuple(VIDEO_SIZES)
ASPECT_RATIOS = ("16:9", "1:1", "9:16")
DEFAULT_RESOLUTION, DEFAULT_ASPECT_RATIO = "720p", "16:9"

DEFAULT_FRAMES = 89
"""89 frames at 25 fps ≈ 3.6 s."""
DEFAULT_STEPS = 30
"""What the 0.9.7 recipes run per pass (the dev recipe's second pass runs the last 13 of its 30)."""
DEFAULT_FRAME_RATE = 25

FRAMES_RANGE = (9, 257)
STEPS_RANGE = (1, 100)
FRAME_RATE_RANGE = (1, 60)
"""The API's ranges (the nodes allow more: long videos, more steps, any frame rate)."""

MAX_SEED = 0xFFFFFFFFFFFFFFFF
"""Seeds are unsigned 64-bit, in the API and in ComfyUI's seed widgets."""
