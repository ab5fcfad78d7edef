"""Native torch LTX-Video 0.9.x: transformer, causal video VAE, latent upsampler and checkpoint loading.

Plain torch (+ einops, safetensors); never imports ComfyUI. Layers come from an injected `operations`
namespace and attention from an injected function, so a host can add low-VRAM loading and weight casting.
"""

from .checkpoint import LTXCheckpoint, load_checkpoint, load_latent_upsampler
from .conditioning import Condition
from .decoding import iter_decode_video
from .pipeline import VideoLatents, decode_video, generate, sample_video
from .non_finite import NonFiniteLatentsError
from .positions import latent_positions
from .transformer import SkipLayers, Transformer3D
from .upsampler import LatentUpsampler
from .vae import CausalVideoVAE
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
    "sample_long_video",
    "sample_video",
]
