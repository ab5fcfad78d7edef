"""Ways to make sampling cheaper without changing the model: step caching, compiled blocks, fp8 matmuls."""

from .compiled import compile_blocks
from .fp8 import can_use_fp8_matmul, scaled_fp8_linear, supports_fp8_matmul
from .step_cache import BranchCache, StepCache

__all__ = ["BranchCache", "StepCache", "can_use_fp8_matmul", "compile_blocks", "scaled_fp8_linear",
           "supports_fp8_matmul"]
