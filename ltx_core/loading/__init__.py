"""Reading model files: official single files, ComfyUI and diffusers key layouts, configs checked before use."""

from . import known_configs
from .checkpoint import SAFETENSORS_SUFFIXES, LTXCheckpoint, load_checkpoint, load_latent_upsampler
from .config_checks import check_transformer_config, check_upsampler_config, check_vae_config
from .safetensors_check import NotSafetensorsError, check_head, check_safetensors

__all__ = ["SAFETENSORS_SUFFIXES", "LTXCheckpoint", "NotSafetensorsError", "check_head", "check_safetensors",
           "check_transformer_config", "check_upsampler_config", "check_vae_config", "known_configs",
           "load_checkpoint", "load_latent_upsampler"]
