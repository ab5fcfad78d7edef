"""The networks: the LTX-Video transformer, the causal video VAE, the latent upsampler, and the grid they share."""

from . import grid
from .ops import AttentionFn, default_attention, fp8_matmul, manual_cast
from .positions import latent_positions
from .transformer import STG_MODES, SkipLayers, Transformer3D
from .upsampler import LatentUpsampler
from .vae import CausalVideoVAE, VAEConfig

__all__ = ["STG_MODES", "AttentionFn", "CausalVideoVAE", "LatentUpsampler", "SkipLayers", "Transformer3D",
           "VAEConfig", "default_attention", "fp8_matmul", "grid", "latent_positions", "manual_cast"]
