"""Latents that turn NaN or infinite: found with one cheap check per step, reported with where and why.

A NaN weight (a damaged checkpoint, a LoRA at too high a strength) or a float16 overflow spreads to every latent
within a step and decodes to a black video. `check_finite` costs one reduction and one device sync; only after a
failure are the model's weights read to name the ones that hold NaN or inf.
"""

from __future__ import annotations

import torch

LIKELY_CAUSES = ("NaN or infinite weights in the checkpoint (a damaged or badly converted file), a LoRA that "
                 "overflows the weights (too high a strength), or float16 overflow (float16 ends at 65504; use "
                 "bf16 or fp32 weights)")

INPUT_CAUSES = ("NaN or infinite weights in the VAE that encoded the image/video conditions, or in the latent "
                "upsampler that made the second pass's input")


class NonFiniteLatentsError(ValueError):
    """The latents of a generation became NaN or infinite: stopped there rather than decoded into a black video.

    `where` says where (`step 3 of 30`, the pass); the message adds the likely causes and, when the weights of
    `model` (the transformer, or the VAE / upsampler named `model_name`) hold NaN or inf, which ones."""

    def __init__(self, where: str, model: torch.nn.Module | None = None, causes: str = LIKELY_CAUSES,
                 model_name: str = "transformer"):
        self.where = where
        self.bad_parameters = non_finite_parameters(model) if model is not None else []
        found = ""
        if self.bad_parameters:
            found = (f" The {model_name}'s weights hold NaN/inf values in {', '.join(self.bad_parameters[:3])}"
                     + (" and more" if len(self.bad_parameters) > 3 else "") + ".")
        fp16 = getattr(model, "compute_dtype", None) == torch.float16
        computes = f" The {model_name} computes in float16, where overflow is the most common cause." if fp16 else ""
        super().__init__(f"the latents became NaN or infinite at {where}; generation stopped instead of giving a "
                         f"black video. Likely causes: {causes}.{found}{computes}")


def non_finite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or inf (only looked for after a failure: it reads them all)."""
    bad = []
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if tensor.is_floating_point() and tensor.device.type != "meta":
                values = tensor.float() if tensor.element_size() == 1 else tensor
                if not bool(torch.isfinite(values).all()):
                    bad.append(name)
    return bad


def check_finite(tensor: torch.Tensor, where: str, model: torch.nn.Module | None = None,
                 causes: str = LIKELY_CAUSES, model_name: str = "transformer") -> None:
    """Raise `NonFiniteLatentsError` when `tensor` holds NaN or inf (one reduction and one sync)."""
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteLatentsError(where, model, causes, model_name)
