"""Regional compilation: each transformer block compiled on its own with `torch.compile`.

All blocks share one structure, so the compiler traces one block and reuses the code for the others (a few
seconds instead of minutes for the whole model). Weights stay module parameters that the compiled code reads, so
patching them in place (ComfyUI's LoRA patching) changes the result without a recompile.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


def compile_blocks(transformer: nn.Module, **options: Any) -> nn.Module:
    """Compile every block of `transformer.transformer_blocks` in place (`options` go to `torch.compile`);
    returns the transformer. Compiling twice is a no-op."""
    blocks = transformer.transformer_blocks
    if getattr(transformer, "blocks_compiled", False):
        return transformer
    for block in blocks:
        block.compile(**options)
    transformer.blocks_compiled = True
    logger.info("compiling %d transformer blocks on first use (%s)", len(blocks), options or "default options")
    return transformer
