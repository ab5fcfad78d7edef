"""LoRA files for the LTX-Video transformer: which format a file is in and which weight each entry adapts.

A LoRA file names the layers it adapts in one of several dialects; this module finds, for every entry,
the official `Transformer3DModel` parameter it belongs to (`transformer_blocks.3.attn2.to_out.0.weight`, ...),
checks that the shapes fit the model, and turns file-level settings (PEFT adapter metadata) into the per-layer
`.alpha` / `.dora_scale` tensors that the usual weight-adapter code reads. The weight math itself is left to the
host (ComfyUI's `comfy.lora` / weight adapters); `lora_delta` is a plain-torch version of it for plain LoRA.
Key dialects are read in `keys`; which tensors each adapter type needs, and the shape it makes, in
`adapters`.

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

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .adapters import delta_shape, flat2, layer_kind, missing_roles, unchained_factors
from .keys import LayerIndex, peft_alpha, peft_config, split_key, unsupported_kind


class LoraError(ValueError):
    """A LoRA file that cannot be applied to this transformer (the message says why, in a sentence)."""


KIND_NAMES = {"lora": "LoRA", "dora": "DoRA", "loha": "LoHa", "lokr": "LoKr", "glora": "GLoRA", "oft": "OFT",
              "diff": "full weight diff", "set": "weight replacement"}

_IC_LORA_NAME = re.compile(r"ic[-_ ]?lora", re.IGNORECASE)


def is_ic_lora(*names: str) -> bool:
    """Whether a LoRA is an in-context (IC) LoRA, which needs a guide: Lightricks' files and repos say so in their
    names (`ltxv-097-ic-lora-depth-control-comfyui.safetensors`, `LTX-Video-ICLoRA-pose-13b-0.9.7`); their keys
    look like any other LoRA's."""
    return any(_IC_LORA_NAME.search(name) for name in names)


ACCEPTED_FORMATS = (
    "diffusers/PEFT keys like 'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight' / 'lora_B.weight'; "
    "ComfyUI keys like 'diffusion_model.transformer_blocks.0.attn1.to_q.lora_up.weight' / 'lora_down.weight' / "
    "'.alpha' (or lora_A/lora_B); kohya keys like 'lora_unet_transformer_blocks_0_attn1_to_q.lora_down.weight'; "
    "or the same module names without a prefix; adapter types LoRA, DoRA, LoHa, LoKr, GLoRA, OFT and full diffs"
)


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
    rank: int | None = None
    alpha: float | None = None
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
# Mapping a file: group its keys by layer, resolve each layer, refuse with one sentence for everything wrong


@dataclass
class _FileLayer:
    """The keys of one layer as the file names it, and the transformer parameter that name resolved to."""

    prefix: str
    """The file's layer part (`transformer.transformer_blocks.0.attn1.to_q`)."""
    fmt: str
    peft_name: str
    """The layer name without prefixes: what PEFT's `alpha_pattern` is matched against."""
    target: str
    roles: dict[str, tuple[str, str]] = field(default_factory=dict)
    """role → (adapter kind, file key)."""

    @property
    def keys(self) -> list[str]:
        return [key for _, key in self.roles.values()]


@dataclass
class _Findings:
    """What a file holds besides usable layers, gathered over all keys so that one error can name every case."""

    unmatched: list[str] = field(default_factory=list)
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    """adapter type no host implements → its keys."""
    incomplete: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    """Ranks that disagree, NaN/inf values, an alpha that is not one finite number: one phrase each."""


def _group_layers(state_dict: Mapping[str, torch.Tensor], index: LayerIndex,
                  found: _Findings) -> dict[str, _FileLayer]:
    """The file's keys by the transformer layer they adapt, in file order; the rest are noted in `found`."""
    layers: dict[str, _FileLayer] = {}
    for key in state_dict:
        kind_name = unsupported_kind(key)
        if kind_name is not None:
            found.unsupported.setdefault(kind_name, []).append(key)
            continue
        parsed = split_key(key)
        if parsed is None:
            found.unmatched.append(key)
            continue
        prefix, kind, role = parsed
        if prefix not in layers:
            located = index.locate(prefix)
            if located is None:
                found.unmatched.append(key)
                continue
            fmt, bare, target = located
            layers[prefix] = _FileLayer(prefix=prefix, fmt=fmt, peft_name=bare, target=target)
        layers[prefix].roles[role] = (kind, key)
    return layers


def _new_module(layer: _FileLayer, kind: str, tensors: dict[str, torch.Tensor],
                config: dict | None) -> LoraModule:
    """The module of a complete layer, with its rank, alpha (the file's, else the PEFT metadata's) and DoRA-ness."""
    module = LoraModule(file_prefix=layer.prefix, target=layer.target, kind=kind,
                        keys={role: key for role, (_, key) in layer.roles.items()})
    if kind == "lora":
        module.rank = int(tensors["down"].shape[0])
    elif kind == "loha":
        module.rank = int(tensors["w1_b"].shape[0])
    if "alpha" in tensors:
        module.alpha = float(tensors["alpha"].float().item())
    elif kind == "lora" and config is not None:
        module.alpha = peft_alpha(config, layer.peft_name, module.rank)
    if kind == "lora" and ("dora_scale" in tensors or "magnitude" in tensors):
        module.kind = "dora"
    return module


def _module_tensors(module: LoraModule, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A module's tensors as the host's weight adapters read them: PEFT's alpha, magnitude and lora_B bias turned
    into `.alpha` / `.dora_scale` / `.diff_b`, then the file's own tensors."""
    out: dict[str, torch.Tensor] = {}
    if module.alpha is not None and "alpha" not in tensors:  # from the PEFT metadata
        out[f"{module.file_prefix}.alpha"] = torch.tensor(module.alpha, dtype=torch.float32)
    if module.kind == "dora" and "dora_scale" not in tensors:  # PEFT stores the magnitude per output row
        out[f"{module.file_prefix}.dora_scale"] = tensors["magnitude"].reshape(-1, 1)
    if "up_bias" in tensors:  # PEFT lora_bias: the bias moves by factor · lora_B.bias
        out[f"{module.file_prefix}.diff_b"] = tensors["up_bias"].float() * module.factor
    for role, key in module.keys.items():
        if role not in ("magnitude", "up_bias"):
            out[key] = tensors[role]
    return out


def _bias_of(weight: str) -> str:
    """The bias parameter beside a `.weight` parameter."""
    return weight[: -len(".weight")] + ".bias"


def _dims(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def _shape_mismatches(module: LoraModule, tensors: dict[str, torch.Tensor],
                      shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Where a module's weight (or bias) change does not fit the parameter it targets, one phrase each."""
    mismatches = []
    expected = shapes[module.target]
    produced = delta_shape(module.kind, tensors)
    if produced is not None and produced != flat2(expected):
        mismatches.append(f"{module.target} is {_dims(expected)} but the file's {KIND_NAMES[module.kind]} for it "
                          f"makes {_dims(produced)}")
    bias = tensors.get("bias")
    if bias is not None and module.target.endswith(".weight"):
        bias_name = _bias_of(module.target)
        bias_shape = shapes.get(bias_name)
        if bias_shape is None or tuple(bias.shape) != bias_shape:
            mismatches.append(f"{bias_name} does not take the file's diff of shape {_dims(bias.shape)}")
    return mismatches


def _resolve_layer(layer: _FileLayer, state_dict: Mapping[str, torch.Tensor], index: LayerIndex,
                   config: dict | None, found: _Findings) -> tuple[LoraModule, dict[str, torch.Tensor]] | None:
    """One file layer as a module and its tensors for the host; None, noted in `found`, when it cannot be one."""
    kind = layer_kind(layer.roles)
    if kind is None:  # only `.alpha` / `.dora_scale` for a layer: nothing to apply
        found.unmatched.extend(layer.keys)
        return None
    missing = missing_roles(kind, set(layer.roles))
    if missing:
        found.incomplete.append(f"{layer.prefix} (no {', '.join(missing)})")
        return None
    if kind not in ("diff", "set") and not layer.target.endswith(".weight"):  # tables take full diffs only
        found.unmatched.extend(layer.keys)
        return None
    tensors = {role: state_dict[key] for role, (_, key) in layer.roles.items()}
    damage = _damage(layer, kind, tensors)
    if damage:
        found.damaged.extend(damage)
        return None
    module = _new_module(layer, kind, tensors, config)
    if module.alpha is not None and not math.isfinite(module.alpha):
        found.damaged.append(f"{layer.prefix}: the PEFT metadata (lora_adapter_metadata) gives alpha {module.alpha}")
        return None
    if "up_bias" in tensors and _bias_of(layer.target) not in index.shapes:
        found.incomplete.append(f"{layer.prefix} (a LoRA bias for a layer without bias)")
        return None
    found.mismatched.extend(_shape_mismatches(module, tensors, index.shapes))
    return module, _module_tensors(module, tensors)


def _non_finite(tensor: torch.Tensor) -> str | None:
    """'2 NaN and 1 infinite values (of 256)' when a tensor holds any; None when all its values are finite."""
    if not tensor.is_floating_point():
        return None
    values = tensor.float() if tensor.element_size() == 1 else tensor  # fp8 has no isfinite kernel on every device
    finite = torch.isfinite(values)
    if bool(finite.all()):
        return None
    nan = int(torch.isnan(values).sum())
    return f"{nan} NaN and {int((~finite).sum()) - nan} infinite values (of {tensor.numel()})"


def _damage(layer: _FileLayer, kind: str, tensors: dict[str, torch.Tensor]) -> list[str]:
    """What makes a layer's tensors unusable whatever the model: factors whose ranks disagree (the host would drop
    the layer with only a log line), an alpha that is not one number, NaN or infinite values (a black video)."""
    keys = {role: key for role, (_, key) in layer.roles.items()}
    problems = []
    for a, b in unchained_factors(kind, tensors):
        first, second = tensors[a], tensors[b]
        why = ("the two Hadamard factors differ in shape" if (a, b) == ("w1_a", "w2_a") else
               f"their ranks disagree ({first.shape[1] if first.ndim > 1 else '?'} vs {second.shape[0]})")
        problems.append(f"{keys[a]} is {_dims(first.shape)} but {keys[b]} is {_dims(second.shape)}: {why}")
    alpha = tensors.get("alpha")
    if alpha is not None and alpha.numel() != 1:
        problems.append(f"{keys['alpha']} holds {alpha.numel()} values where alpha is one number")
    for role, tensor in tensors.items():
        bad = _non_finite(tensor)
        if bad is not None:
            problems.append(f"{keys[role]} holds {bad}")
    return problems


def _unsupported_error(name: str, unsupported: dict[str, list[str]]) -> LoraError:
    kinds = ", ".join(sorted(unsupported))
    example = next(iter(unsupported.values()))[0]
    return LoraError(f"'{name}' is not supported: {kinds} adapters (e.g. key '{example}') have no weight adapter "
                     f"in this host; LoRA, DoRA, LoHa, LoKr, GLoRA, OFT and full diffs are supported")


def _refusal(name: str, modules: list[LoraModule], found: _Findings,
             state_dict: Mapping[str, torch.Tensor]) -> LoraError | None:
    """Why the resolved layers cannot be applied (damaged, incomplete, another model size, nothing, twice)."""
    if found.damaged:
        return LoraError(f"'{name}' is damaged and is not applied: {len(found.damaged)} problems, e.g. "
                         f"{'; '.join(found.damaged[:3])}. Re-export or download the file again; NaN or infinite "
                         f"values would give a black video, and factors whose ranks disagree cannot be applied")
    if found.incomplete:
        return LoraError(f"'{name}' is incomplete: {len(found.incomplete)} layers lack tensors, e.g. "
                         f"{'; '.join(found.incomplete[:3])}")
    if found.mismatched:
        return LoraError(f"'{name}' does not fit this model: {len(found.mismatched)} of {len(modules)} layers "
                         f"differ in shape, e.g. {'; '.join(found.mismatched[:3])}. It was probably made for another "
                         f"LTX-Video model (13B: 48 blocks of 4096, 2B: 28 blocks of 2048)")
    if not modules:
        examples = ", ".join(f"'{k}'" for k in list(state_dict)[:4]) or "none"
        return LoraError(f"'{name}' has no LoRA weights for the LTX-Video transformer: none of its {len(state_dict)} "
                         f"keys names one of its layers (first keys: {examples}). Accepted: {ACCEPTED_FORMATS}")
    targets: dict[str, list[str]] = {}
    for module in modules:
        targets.setdefault(module.target, []).append(module.file_prefix)
    duplicated = {t: p for t, p in targets.items() if len(p) > 1}
    if duplicated:
        target, prefixes = next(iter(duplicated.items()))
        return LoraError(f"'{name}' adapts {len(duplicated)} layers twice under different names, e.g. {target} as "
                         f"{' and '.join(prefixes)}; a file must name each layer once")
    return None


def _formats(modules: list[LoraModule], layers: dict[str, _FileLayer]) -> list[str]:
    """The key dialects of the mapped layers, most used first."""
    counts = Counter(layers[module.file_prefix].fmt for module in modules)
    return sorted(counts, key=lambda f: -counts[f])


def map_lora(state_dict: Mapping[str, torch.Tensor], parameter_shapes: Mapping[str, Sequence[int]],
             metadata: Mapping[str, str] | None = None, *, name: str = "LoRA") -> LoraMapping:
    """Map a LoRA file onto a transformer whose parameters have `parameter_shapes` (its `state_dict` shapes).

    Raises `LoraError` when nothing in the file adapts this transformer, when it uses an adapter type that
    nothing implements, when a layer's tensors are incomplete, or when its shapes do not fit (a LoRA for another
    model size). Keys that adapt nothing are returned in `unmatched` for the caller to warn about.
    """
    index = LayerIndex(parameter_shapes)
    config = peft_config(metadata)
    found = _Findings()
    layers = _group_layers(state_dict, index, found)
    if found.unsupported:
        raise _unsupported_error(name, found.unsupported)
    modules: list[LoraModule] = []
    tensors: dict[str, torch.Tensor] = {}
    for layer in layers.values():
        resolved = _resolve_layer(layer, state_dict, index, config, found)
        if resolved is not None:
            modules.append(resolved[0])
            tensors.update(resolved[1])
    refusal = _refusal(name, modules, found, state_dict)
    if refusal is not None:
        raise refusal
    return LoraMapping(name=name, formats=_formats(modules, layers), modules=modules, state_dict=tensors,
                       unmatched=found.unmatched)


# ------------------------------------------------------------------------------------------------------------------
# Merging without a host


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
