"""LoRA files onto the transformer: format detection, key names, adapters (LoRA, LoHa, LoKr, DoRA, ...)."""

from .keys import peft_config, split_key
from .mapping import KIND_NAMES, LoraError, LoraMapping, LoraModule, is_ic_lora, lora_delta, map_lora, merge_lora_

__all__ = ["KIND_NAMES", "LoraError", "LoraMapping", "LoraModule", "is_ic_lora", "lora_delta", "map_lora",
           "merge_lora_", "peft_config", "split_key"]
