"""LoRA files for the LTX-Video transformer: which format a file is in and which weight each entry adapts.

A LoRA file names the layers it adapts in one of several dialects (spec §7); this module finds, for every entry,
the official `Transformer3DModel` parameter it belongs to (`transformer_blocks.3.attn2.to_out.0.weight`, ...),
checks that the shapes fit the model, and turns file-level settings (PEFT adapter metadata) into the per-layer
`.alpha` / `.dora_scale` tensors that the usual weight-adapter code reads. The weight math itself is left to the
host (ComfyUI's `comfy.lora` / weight adapters); `lora_delta` is a plain-torch version of it for plain LoRA.

Accepted names, detected from the keys (no setting):

- diffusers / PEFT (LTX-Video trainer, diffusers `save_lora_weights`): `transformer.transformer_blocks.0.attn1
  .to_q.lora_A.weight` / `lora_B`, alpha from the PEFT adapter metadata in the safetensors header when present
  (`lora_adapter_metadata`: `lora_alpha`, `alpha_pattern`, `use_rslora`; `lora_magnitude_vector` = DoRA);
  `base_model.model.` prefixes too.
- ComfyUI: `diffusion_model.` (or `model.diffusion_model.`) + module + `lora_A/lora_B` or `lora_up/lora_down`,
  optional `.alpha`, `.dora_scale`; LoHa (`hada_*`), LoKr (`lokr_*`), GLoRA, OFT/BOFT, full `diff` / `diff_b`.
- kohya / LyCORIS / OneTrainer: `lora_unet_transformer_blocks_0_attn1_to_q.lora_down.weight` (`lycoris_`,
  `lora_transformer_`), dots written as underscores; resolved against the real module names.
- the same module names without a prefix.

Module names may be the official ones or diffusers' (`proj_in`, `time_embed`, `norm_q`); every weight of the
transformer can be a target (attention projections, feed-forward, `patchify_proj`, `adaln_single`,
`caption_projection`, `proj_out`, and full-tensor diffs of tables and norms).

Scale rule (diffusers and ComfyUI agree): the delta is `scale · alpha / rank · up @ down` when alpha is known,
else `scale · up @ down`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

import torch

from .formats import diffusers_to_official_transformer


class LoraError(ValueError):
    """A LoRA file that cannot be applied to this transformer (the message says why, in a sentence)."""


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

KIND_NAMES = {"lora": "LoRA", "dora": "DoRA", "loha": "LoHa", "lokr": "LoKr", "glora": "GLoRA", "oft": "OFT",
              "diff": "full weight diff", "set": "weight replacement"}

ACCEPTED_FORMATS = (
    "diffusers/PEFT keys like 'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight' / 'lora_B.weight'; "
    "ComfyUI keys like 'diffusion_model.transformer_blocks.0.attn1.to_q.lora_up.weight' / 'lora_down.weight' / "
    "'.alpha' (or lora_A/lora_B); kohya keys like 'lora_unet_transformer_blocks_0_attn1_to_q.lora_down.weight'; "
    "or the same module names without a prefix; adapter types LoRA, DoRA, LoHa, LoKr, GLoRA, OFT and full diffs"
)

# official name part → diffusers name part (for the underscore spellings of both)
_DIFFUSERS_PARTS = (("patchify_proj", "proj_in"), ("adaln_single", "time_embed"), ("q_norm", "norm_q"),
                    ("k_norm", "norm_k"))


@dataclass
class LoraModule:
    """One adapted layer: the file's name for it, the transformer parameter it changes, and its tensors."""

    file_prefix: str
    """What the file's keys for this layer start with (`transformer.transformer_blocks.0.attn1.to_q`)."""
    target: str
    """The official transformer parameter it adapts (`transformer_blocks.0.attn1.to_q.weight`)."""
    kind: str
    """`lora`, `dora`, `loha`, `lokr`, `glora`, `oft`, `diff` or `set`."""
    keys: dict[str, str] = field(default_factory=dict)
    """role (`up`, `down`, `alpha`, `w1_a`, ...) → file key."""
    rank: Optional[int] = None
    alpha: Optional[float] = None
    """alpha as the host reads it (`factor = alpha / rank`); None: factor 1."""

    @property
    def factor(self) -> float:
        """`alpha / rank` (1 when the file gives no alpha): what `scale` is multiplied by for plain LoRA."""
        if self.alpha is None or not self.rank:
            return 1.0
        return self.alpha / self.rank


@dataclass
class LoraMapping:
    """A LoRA file mapped onto a transformer: what the host needs to patch it, and what was left over."""

    name: str
    formats: list[str]
    """Key dialects found, most used first (`diffusers/PEFT`, `ComfyUI`, `kohya`, `bare`)."""
    modules: list[LoraModule]
    state_dict: dict[str, torch.Tensor]
    """The file's tensors for the matched layers, plus `.alpha` / `.dora_scale` derived from the PEFT metadata."""
    unmatched: list[str] = field(default_factory=list)
    """File keys that adapt nothing in this transformer (other models' layers, text-encoder parts, ...)."""

    @property
    def key_map(self) -> dict[str, str]:
        """File layer name → transformer parameter name: the `to_load` map of `comfy.lora.load_lora`."""
        return {m.file_prefix: m.target for m in self.modules}

    @property
    def kinds(self) -> list[str]:
        return sorted({m.kind for m in self.modules})

    def summary(self) -> str:
        ranks = sorted({m.rank for m in self.modules if m.rank})
        kinds = ", ".join(KIND_NAMES.get(k, k) for k in self.kinds)
        rank_text = f", rank {ranks[0]}" if len(ranks) == 1 else (f", ranks {ranks[0]}–{ranks[-1]}" if ranks else "")
        return (f"'{self.name}': {kinds} on {len(self.modules)} layers ({' + '.join(self.formats)} names{rank_text})"
                + (f", {len(self.unmatched)} keys unused" if self.unmatched else ""))


# ------------------------------------------------------------------------------------------------------------------
# Key parsing


def split_key(key: str) -> Optional[tuple[str, str, str]]:
    """`(layer part, kind, role)` of a LoRA key, or None when its suffix is not one we know."""
    for suffix in _SUFFIX_ORDER:
        if key.endswith(suffix) and len(key) > len(suffix):
            kind, role = _SUFFIXES[suffix]
            return key[: -len(suffix)], kind, role
    return None


def unsupported_kind(key: str) -> Optional[str]:
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


class _LayerIndex:
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

    def resolve(self, name: str, dotted: bool) -> Optional[str]:
        if dotted:
            if name in self.layers:
                return name
            renamed = diffusers_to_official_transformer(name + ".")[:-1]
            if renamed in self.layers:
                return renamed
        return self.underscored.get(name.replace(".", "_"))


# ------------------------------------------------------------------------------------------------------------------
# PEFT adapter metadata


def peft_config(metadata: Optional[Mapping[str, str]], prefix: str = "transformer") -> Optional[dict]:
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


def _pattern_value(patterns: Mapping[str, float], name: str) -> Optional[float]:
    """PEFT's `get_pattern_key`: the first pattern that matches the end of the module name."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", name):
            return value
    return None


def _peft_alpha(config: dict, peft_name: str, rank: int) -> Optional[float]:
    """alpha as the host reads it (factor = alpha / rank) for PEFT's `lora_alpha / r` (or `/ sqrt(r)`)."""
    alpha = _pattern_value(config.get("alpha_pattern") or {}, peft_name)
    if alpha is None:
        alpha = config.get("lora_alpha")
    if alpha is None:
        return None
    if config.get("use_rslora"):
        return float(alpha) * math.sqrt(rank)  # PEFT: alpha / sqrt(r) = (alpha * sqrt(r)) / r
    return float(alpha)


# ------------------------------------------------------------------------------------------------------------------
# Mapping a file


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _flat2(shape: Sequence[int]) -> tuple[int, int]:
    return (shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1)


def _delta_shape(kind: str, tensors: dict[str, torch.Tensor]) -> Optional[tuple[int, int]]:
    """(out, in) of the weight a layer's adapter produces, where it can be read off the tensors."""
    if kind in ("lora", "dora") and "reshape" not in tensors and "mid" not in tensors:
        return tensors["up"].shape[0], _flat2(_shape(tensors["down"]))[1]
    if kind == "loha" and "t1" not in tensors:
        return tensors["w1_a"].shape[0], _flat2(_shape(tensors["w1_b"]))[1]
    if kind == "lokr" and "t2" not in tensors:
        w1 = _shape(tensors["w1"]) if "w1" in tensors else (tensors["w1_a"].shape[0], tensors["w1_b"].shape[1])
        w2 = _shape(tensors["w2"]) if "w2" in tensors else (tensors["w2_a"].shape[0],
                                                            _flat2(_shape(tensors["w2_b"]))[1])
        return w1[0] * w2[0], w1[1] * _flat2(w2)[1]
    if kind in ("diff", "set") and "weight" in tensors:
        return _flat2(_shape(tensors["weight"]))
    return None


_REQUIRED_ROLES = {"lora": (("up",), ("down",)), "loha": (("w1_a",), ("w1_b",), ("w2_a",), ("w2_b",)),
                   "lokr": (("w1", "w1_a"), ("w2", "w2_a")), "glora": (("a1",), ("a2",), ("b1",), ("b2",)),
                   "oft": (("blocks",),)}
"""Per adapter type: the roles it needs, each as alternatives (LoKr takes a whole w1 or its factors w1_a/w1_b)."""


def _layer_kind(roles: dict[str, tuple[str, str]]) -> Optional[str]:
    kinds = {kind for kind, _ in roles.values()} - {"any"}
    for kind in ("lora", "loha", "lokr", "glora", "oft", "set", "diff"):
        if kind in kinds:
            return kind
    return None


def _missing_roles(kind: str, roles: set[str]) -> list[str]:
    missing = [alternatives[0] for alternatives in _REQUIRED_ROLES.get(kind, ()) if not roles & set(alternatives)]
    if kind == "lokr":
        for whole, a, b in (("w1", "w1_a", "w1_b"), ("w2", "w2_a", "w2_b")):
            if whole not in roles and a in roles and b not in roles:
                missing.append(b)
    return missing


def _dims(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def map_lora(state_dict: Mapping[str, torch.Tensor], parameter_shapes: Mapping[str, Sequence[int]],
             metadata: Optional[Mapping[str, str]] = None, *, name: str = "LoRA") -> LoraMapping:
    """Map a LoRA file onto a transformer whose parameters have `parameter_shapes` (its `state_dict` shapes).

    Raises `LoraError` when nothing in the file adapts this transformer, when it uses an adapter type that
    nothing implements, when a layer's tensors are incomplete, or when its shapes do not fit (a LoRA for another
    model size). Keys that adapt nothing are returned in `unmatched` for the caller to warn about.
    """
    index = _LayerIndex(parameter_shapes)
    config = peft_config(metadata)
    layers: dict[str, dict[str, tuple[str, str]]] = {}  # file layer part → role → (kind, key)
    layer_targets: dict[str, str] = {}
    layer_formats: dict[str, str] = {}
    layer_peft_names: dict[str, str] = {}
    unmatched: list[str] = []
    unsupported: dict[str, list[str]] = {}
    for key in state_dict:
        kind_name = unsupported_kind(key)
        if kind_name is not None:
            unsupported.setdefault(kind_name, []).append(key)
            continue
        parsed = split_key(key)
        if parsed is None:
            unmatched.append(key)
            continue
        layer, kind, role = parsed
        if layer not in layer_targets:
            fmt, bare, dotted = _strip_prefixes(layer)
            target_layer = None if layer.startswith(_TEXT_ENCODER_PREFIXES) else index.resolve(bare, dotted)
            if target_layer is None:
                unmatched.append(key)
                continue
            layer_targets[layer] = index.layers[target_layer]
            layer_formats[layer] = fmt
            layer_peft_names[layer] = bare
        layers.setdefault(layer, {})[role] = (kind, key)

    if unsupported:
        kinds = ", ".join(sorted(unsupported))
        example = next(iter(unsupported.values()))[0]
        raise LoraError(f"'{name}' is not supported: {kinds} adapters (e.g. key '{example}') have no weight adapter "
                        f"in this host; LoRA, DoRA, LoHa, LoKr, GLoRA, OFT and full diffs are supported")

    modules: list[LoraModule] = []
    tensors_out: dict[str, torch.Tensor] = {}
    incomplete: list[str] = []
    mismatched: list[str] = []
    for layer, roles in layers.items():
        kind = _layer_kind(roles)
        if kind is None:  # only `.alpha` / `.dora_scale` for a layer: nothing to apply
            unmatched.extend(key for _, key in roles.values())
            continue
        missing = _missing_roles(kind, set(roles))
        if missing:
            incomplete.append(f"{layer} (no {', '.join(missing)})")
            continue
        target = layer_targets[layer]
        if kind not in ("diff", "set") and not target.endswith(".weight"):  # tables take full diffs only
            unmatched.extend(key for _, key in roles.values())
            continue
        tensors = {role: state_dict[key] for role, (_, key) in roles.items()}
        module = LoraModule(file_prefix=layer, target=target, kind=kind,
                            keys={role: key for role, (_, key) in roles.items()})
        if kind == "lora":
            module.rank = int(tensors["down"].shape[0])
        elif kind == "loha":
            module.rank = int(tensors["w1_b"].shape[0])
        if "alpha" in tensors:
            module.alpha = float(tensors["alpha"].float().item())
        elif kind == "lora" and config is not None:
            module.alpha = _peft_alpha(config, layer_peft_names[layer], module.rank)
            if module.alpha is not None:
                tensors_out[f"{layer}.alpha"] = torch.tensor(module.alpha, dtype=torch.float32)
        if kind == "lora" and ("dora_scale" in tensors or "magnitude" in tensors):
            module.kind = "dora"
            if "dora_scale" not in tensors:  # PEFT stores the magnitude per output row
                tensors_out[f"{layer}.dora_scale"] = tensors["magnitude"].reshape(-1, 1)
        if kind == "lora" and "up_bias" in tensors:  # PEFT lora_bias: the bias moves by factor · lora_B.bias
            bias_key = target[: -len(".weight")] + ".bias" if target.endswith(".weight") else None
            if bias_key is None or bias_key not in index.shapes:
                incomplete.append(f"{layer} (a LoRA bias for a layer without bias)")
                continue
            tensors_out[f"{layer}.diff_b"] = tensors["up_bias"].float() * module.factor
        expected = index.shapes[target]
        produced = _delta_shape(module.kind, tensors)
        if produced is not None and produced != _flat2(expected):
            mismatched.append(f"{target} is {_dims(expected)} but the file's {KIND_NAMES[module.kind]} for it "
                              f"makes {_dims(produced)}")
        bias = tensors.get("bias")
        if bias is not None and target.endswith(".weight"):
            bias_shape = index.shapes.get(target[: -len(".weight")] + ".bias")
            if bias_shape is None or tuple(bias.shape) != bias_shape:
                mismatched.append(f"{target[:-len('.weight')]}.bias does not take the file's diff of shape "
                                  f"{_dims(bias.shape)}")
        for role, (_, key) in roles.items():
            if role not in ("magnitude", "up_bias"):
                tensors_out[key] = state_dict[key]
        modules.append(module)

    if incomplete:
        raise LoraError(f"'{name}' is incomplete: {len(incomplete)} layers lack tensors, e.g. "
                        f"{'; '.join(incomplete[:3])}")
    if mismatched:
        raise LoraError(f"'{name}' does not fit this model: {len(mismatched)} of {len(modules)} layers differ in "
                        f"shape, e.g. {'; '.join(mismatched[:3])}. It was probably made for another LTX-Video "
                        f"model (13B: 48 blocks of 4096, 2B: 28 blocks of 2048)")
    if not modules:
        examples = ", ".join(f"'{k}'" for k in list(state_dict)[:4]) or "none"
        raise LoraError(f"'{name}' has no LoRA weights for the LTX-Video transformer: none of its {len(state_dict)} "
                        f"keys names one of its layers (first keys: {examples}). Accepted: {ACCEPTED_FORMATS}")

    counts: dict[str, int] = {}
    for module in modules:
        counts[layer_formats[module.file_prefix]] = counts.get(layer_formats[module.file_prefix], 0) + 1
    formats = sorted(counts, key=lambda f: -counts[f])
    targets: dict[str, list[str]] = {}
    for module in modules:
        targets.setdefault(module.target, []).append(module.file_prefix)
    duplicated = {t: p for t, p in targets.items() if len(p) > 1}
    if duplicated:
        target, prefixes = next(iter(duplicated.items()))
        raise LoraError(f"'{name}' adapts {len(duplicated)} layers twice under different names, e.g. {target} as "
                        f"{' and '.join(prefixes)}; a file must name each layer once")
    return LoraMapping(name=name, formats=formats, modules=modules, state_dict=tensors_out, unmatched=unmatched)


def lora_delta(mapping: LoraMapping, module: LoraModule, scale: float = 1.0,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The weight change of one plain-LoRA layer, `scale · alpha/rank · up @ down`, without a host.

    Other adapter types need the host's weight adapters (`comfy.weight_adapter`).
    """
    if module.kind != "lora" or "mid" in module.keys or "reshape" in module.keys:
        raise LoraError(f"'{mapping.name}': {module.target} uses {KIND_NAMES.get(module.kind, module.kind)}; only "
                        f"plain LoRA layers can be merged without ComfyUI's weight adapters")
    up = mapping.state_dict[module.keys["up"]].to(dtype)
    down = mapping.state_dict[module.keys["down"]].to(dtype)
    return (scale * module.factor) * (up.flatten(1) @ down.flatten(1))


def merge_lora_(parameters: Mapping[str, torch.Tensor], mappings: Iterable[tuple[LoraMapping, float]]) -> None:
    """Add plain LoRAs to a model's parameters in place (`dict(model.named_parameters())`), each at its scale."""
    with torch.no_grad():
        for mapping, scale in mappings:
            for module in mapping.modules:
                weight = parameters[module.target]
                delta = lora_delta(mapping, module, scale, torch.float32).reshape(weight.shape)
                weight.copy_((weight.float() + delta).to(weight.dtype))
