"""Native torch port of LTX-Video's causal video VAE (0.9.5-0.9.7 checkpoints); no ComfyUI/diffusers imports."""

from .config import VAEConfig
from .model import CausalVideoVAE

__all__ = ["CausalVideoVAE", "VAEConfig"]
