"""Native torch LTX-Video 0.9.x: the models, loading their files, LoRAs, sampling with the official recipes, decoding.

Plain torch (+ einops, safetensors); never imports ComfyUI. Layers come from an injected `operations`
namespace and attention from an injected function, so a host can add low-VRAM loading and weight casting.

    models/        the transformer, the causal video VAE, the latent upsampler, positions, ops, the grid
    loading/       checkpoint files, key layouts, known configs, config and safetensors checks
    lora/          LoRA files mapped onto the transformer (formats, keys, adapters)
    sampling/      recipes, schedules, guidance, conditions, the denoising passes, `sample_video`, `refine_video`
    windows/       long videos window by window, extending a clip
    acceleration/  step cache, compiled blocks, fp8 matmuls
    decoding.py    `VideoLatents` → frames; generation.py: `generate` (sample, then decode)
    upsampling.py  `upsample_video`: finished latents ×2 in time (temporal upscaler) or size (spatial)
    randomness.py, non_finite.py   what sampling and decoding share: seeded noise, NaN/inf checks
"""

from .decoding import VideoLatents, decode_video, iter_decode_video
from .generation import generate
from .loading import LTXCheckpoint, load_checkpoint, load_latent_upsampler
from .models import CausalVideoVAE, LatentUpsampler, SkipLayers, Transformer3D, latent_positions
from .non_finite import NonFiniteLatentsError
from .sampling import Condition, refine_video, sample_video
from .upsampling import upsample_video
from .windows import plan_extension, sample_long_video

__all__ = [
    "CausalVideoVAE",
    "Condition",
    "LTXCheckpoint",
    "LatentUpsampler",
    "NonFiniteLatentsError",
    "SkipLayers",
    "Transformer3D",
    "VideoLatents",
    "decode_video",
    "generate",
    "iter_decode_video",
    "latent_positions",
    "load_checkpoint",
    "load_latent_upsampler",
    "plan_extension",
    "refine_video",
    "sample_long_video",
    "sample_video",
    "upsample_video",
]
