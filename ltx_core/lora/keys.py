"""The names inside a LoRA file: what each key's prefix, layer part and suffix say (see `ltx_core.lora.mapping`).

Kept apart from the mapping so that the dialect tables (prefixes, adapter suffixes, diffusers renames, PEFT
adapter metadata) can grow without touching the checks that turn a file into a `LoraMapping`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

from ..loading.key_layouts import diffusers_to_official_transformer

# Key prefixes → (format name, whether the rest uses dots (False: kohya-style underscores)).
_PREFIXES: tuple[tuple[str, str, bool], ...] = (
    ("model.diffusion_model.", "ComfyUI", True),
    ("diffusion_model.", "ComfyUI", True),
    ("base_model.model.", "diffusers/PEFT", True),
    ("transformer.", "diffusers/PEFT", True),
    ("unet.", "diffusers/PEFT", True),
    ("lora_unet_", "kohya", False),
    ("lora_transformer_", "kohya", False),
    ("lycoris_", "kohya", False),
)
_TEXT_ENCODER_PREFIXES = ("lora_te", "text_encoder", "text_encoders.", "cond_stage_model.", "te.", "te1.", "te2.",
                          "t5.", "t5xxl.")

# Key suffixes → (adapter kind, role). Longest suffix wins. These are the spellings ComfyUI's weight adapters read.
_SUFFIXES: dict[str, tuple[str, str]] = {
    ".lora_up.weight": ("lora", "up"), ".lora_down.weight": ("lora", "down"), ".lora_mid.weight": ("lora", "mid"),
    ".lora_B.weight": ("lora", "up"), ".lora_A.weight": ("lora", "down"),
    ".lora_B.default.weight": ("lora", "up"), ".lora_A.default.weight": ("lora", "down"),
    ".lora.up.weight": ("lora", "up"), ".lora.down.weight": ("lora", "down"),
    "_lora.up.weight": ("lora", "up"), "_lora.down.weight": ("lora", "down"),
    ".lora_linear_layer.up.weight": ("lora", "up"), ".lora_linear_layer.down.weight": ("lora", "down"),
    ".lora_B": ("lora", "up"), ".lora_A": ("lora", "down"),
    ".lora_B.bias": ("lora", "up_bias"),
    ".lora_magnitude_vector": ("lora", "magnitude"), ".lora_magnitude_vector.weight": ("lora", "magnitude"),
    ".reshape_weight": ("lora", "reshape"),
    ".alpha": ("any", "alpha"), ".dora_scale": ("any", "dora_scale"),
    ".hada_w1_a": ("loha", "w1_a"), ".hada_w1_b": ("loha", "w1_b"), ".hada_w2_a": ("loha", "w2_a"),
    ".hada_w2_b": ("loha", "w2_b"), ".hada_t1": ("loha", "t1"), ".hada_t2": ("loha", "t2"),
    ".lokr_w1": ("lokr", "w1"), ".lokr_w2": ("lokr", "w2"), ".lokr_w1_a": ("lokr", "w1_a"),
    ".lokr_w1_b": ("lokr", "w1_b"), ".lokr_w2_a": ("lokr", "w2_a"), ".lokr_w2_b": ("lokr", "w2_b"),
    ".lokr_t2": ("lokr", "t2"),
    ".a1.weight": ("glora", "a1"), ".a2.weight": ("glora", "a2"), ".b1.weight": ("glora", "b1"),
    ".b2.weight": ("glora", "b2"),
    ".oft_blocks": ("oft", "blocks"), ".rescale": ("oft", "rescale"),
    ".diff": ("diff", "weight"), ".diff_b": ("diff", "bias"), ".w_norm": ("diff", "weight"),
    ".b_norm": ("diff", "bias"), ".set_weight": ("set", "weight"),
}
_SUFFIX_ORDER = sorted(_SUFFIXES, key=len, reverse=True)

# Adapter types we recognise but no host adapter implements: a clear "not supported" instead of silence.
_UNSUPPORTED: dict[str, str] = {
    ".vera_lambda_b": "VeRA", ".vera_lambda_d": "VeRA", ".ia3_l": "IA³", ".lora_E": "AdaLoRA",
    ".oft_r": "PEFT OFT", ".boft_R": "PEFT BOFT", ".boft_s": "PEFT BOFT", ".fourierft_spectrum": "FourierFT",
    ".lora_embedding_A": "LoRA on embeddings", ".lora_embedding_B": "LoRA on embeddings",
    ".hra_u": "HRA", ".ln_tuning_layers": "LN tuning", ".vblora_logits_A": "VB-LoRA",
}

# official name part → diffusers name part (for the underscore spellings of both)
_DIFFUSERS_PARTS = (("patchify_proj", "proj_in"), ("adaln_single", "time_embed"), ("q_norm", "norm_q"),
                    ("k_norm", "norm_k"))


# ------------------------------------------------------------------------------------------------------------------
# Key parsing


def split_key(key: str) -> tuple[str, str, str] | None:
    """`(layer part, kind, role)` of a LoRA key, or None when its suffix is not one we know."""
    for suffix in _SUFFIX_ORDER:
        if key.endswith(suffix) and len(key) > len(suffix):
            kind, role = _SUFFIXES[suffix]
            return key[: -len(suffix)], kind, role
    return None


def unsupported_kind(key: str) -> str | None:
    """The adapter type of a key that no weight adapter implements (VeRA, IA³, ...), else None."""
    for suffix, kind in _UNSUPPORTED.items():
        if key.endswith(suffix) or f"{suffix}." in key:
            return kind
    return None


def _strip_prefixes(layer: str) -> tuple[str, str, bool]:
    """(format, layer name without prefixes, dotted) for a file's layer part."""
    found, dotted = "bare", True
    changed = True
    while changed:
        changed = False
        for prefix, name, prefix_dotted in _PREFIXES:
            if layer.startswith(prefix):
                layer = layer[len(prefix):]
                found = name if found == "bare" else found
                dotted = dotted and prefix_dotted
                changed = prefix_dotted  # nothing follows an underscore prefix but the layer itself
                break
    return found, layer, dotted


class LayerIndex:
    """Every transformer parameter a LoRA can target, by official, diffusers and underscore spellings."""

    def __init__(self, parameter_shapes: Mapping[str, Sequence[int]]):
        self.shapes = {k: tuple(v) for k, v in parameter_shapes.items()}
        self.layers: dict[str, str] = {}
        for name in self.shapes:
            if name.endswith(".weight"):
                self.layers[name[: -len(".weight")]] = name
            elif not name.endswith(".bias"):
                self.layers.setdefault(name, name)  # tables (scale_shift_table) for full diffs
        self.underscored: dict[str, str] = {}
        for layer in self.layers:
            self.underscored[layer.replace(".", "_")] = layer
            alias = layer
            for official, diffusers in _DIFFUSERS_PARTS:
                alias = re.sub(rf"(^|\.){official}(\.|$)", rf"\1{diffusers}\2", alias)
            self.underscored.setdefault(alias.replace(".", "_"), layer)

    def resolve(self, name: str, dotted: bool) -> str | None:
        """The official layer name for a layer name without prefixes, written with dots or kohya underscores."""
        if dotted:
            if name in self.layers:
                return name
            renamed = diffusers_to_official_transformer(name + ".")[:-1]
            if renamed in self.layers:
                return renamed
        return self.underscored.get(name.replace(".", "_"))

    def locate(self, layer: str) -> tuple[str, str, str] | None:
        """(format, name without prefixes, official parameter) of a file's layer part; None: no transformer layer."""
        fmt, bare, dotted = _strip_prefixes(layer)
        target_layer = None if layer.startswith(_TEXT_ENCODER_PREFIXES) else self.resolve(bare, dotted)
        if target_layer is None:
            return None
        return fmt, bare, self.layers[target_layer]


# ------------------------------------------------------------------------------------------------------------------
# PEFT adapter metadata


def peft_config(metadata: Mapping[str, str] | None, prefix: str = "transformer") -> dict | None:
    """The PEFT `LoraConfig` fields diffusers stores in the safetensors header (`lora_adapter_metadata`)."""
    raw = (metadata or {}).get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    scoped = {k[len(prefix) + 1:]: v for k, v in data.items() if k.startswith(prefix + ".")}
    config = scoped or data
    return config if "r" in config or "lora_alpha" in config else None


def _pattern_value(patterns: Mapping[str, float], name: str) -> float | None:
    """PEFT's `get_pattern_key`: the first pattern that matches the end of the module name."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", name):
            return value
    return None


def peft_alpha(config: dict, peft_name: str, rank: int) -> float | None:
    """alpha as the host reads it (factor = alpha / rank) for PEFT's `lora_alpha / r` (or `/ sqrt(r)`)."""
    alpha = _pattern_value(config.get("alpha_pattern") or {}, peft_name)
    if alpha is None:
        alpha = config.get("lora_alpha")
    if alpha is None:
        return None
    if config.get("use_rslora"):
        return float(alpha) * math.sqrt(rank)  # PEFT: alpha / sqrt(r) = (alpha * sqrt(r)) / r
    return float(alpha)
