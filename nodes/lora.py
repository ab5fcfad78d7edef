"""LoRA nodes: attach LoRAs to an LTX-Video model as ComfyUI weight patches on a clone of its ModelPatcher.

The file is mapped onto the transformer by `ltx_core.lora.mapping` (format detection, official parameter names, shape
checks, PEFT metadata) and turned into patches by ComfyUI's own `comfy.lora.load_lora` and weight adapters. The
patches sit on a clone, so the checkpoint is never reloaded: ComfyUI merges them into bf16/fp16/fp32 weights when it
loads the model (the math in fp32), applies them per layer on the fly in low-VRAM partial loading, and restores the
exact base weights when a model without them runs next. Weights stored in fp8 are never re-rounded: their patches
are applied in the compute dtype each time the weight is cast for use (ComfyUI's low-VRAM patch mechanism, used in
full loading too). Changing a LoRA or its scale re-runs only these nodes.

`apply_lora_stack(model, stack)` is the entry point for other nodes (the one-node text-to-video); a stack is the
hosted service's list `[{"path": ..., "weight_name": ..., "scale": ...}]`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import comfy.lora
import comfy.model_management
import comfy.model_patcher
import comfy.utils
import comfy.weight_adapter
import torch
from comfy_api.latest import io
from safetensors import safe_open

from ..fetch import ALLOW_HOSTS_ENV, ALLOW_PRIVATE_ENV, redact_url
from ..ltx_core.arguments import is_number
from ..ltx_core.loading import FP8_DTYPES
from ..ltx_core.lora import KIND_NAMES, LoraError, LoraMapping, is_ic_lora, map_lora
from .inputs import CATEGORY, answer, model_input
from .lora_sources import (
    ALLOW_LOCAL_ENV,
    LoraSourceError,
    check_safetensors,
    check_source,
    is_url,
    lora_files,
    resolve_lora,
)
from .sockets import LTXLoraStackType, LTXModel, LTXModelType

logger = logging.getLogger(__name__)

"""A list of `{"path": str, "weight_name": str | None, "scale": float}` (the service's LoRAWeight list)."""

NO_LORA = "none"
STACK_FIELDS = ("path", "weight_name", "scale")
STACK_EXAMPLE = '[{"path": "my_style.safetensors", "scale": 0.8}]'
CACHED_FILES = 2
"""LoRA files kept in memory, so that changing a scale does not re-read the file (ComfyUI's LoraLoader keeps 1)."""

_file_cache: OrderedDict[tuple, tuple[dict, dict]] = OrderedDict()
_file_cache_lock = threading.Lock()


# ------------------------------------------------------------------------------------------------------------------
# Files and patches


def read_lora_file(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, safetensors metadata) of a LoRA file; safetensors only, the last few kept in memory."""
    check_safetensors(path, f"LoRA file '{path}'")
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    with _file_cache_lock:
        if key in _file_cache:
            _file_cache.move_to_end(key)
            return _file_cache[key]
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise LoraSourceError(f"LoRA file '{path}' could not be read as safetensors: {error}") from error
    with _file_cache_lock:
        _file_cache[key] = (tensors, metadata)
        while len(_file_cache) > CACHED_FILES:
            _file_cache.popitem(last=False)
    return tensors, metadata


class PeftDoRAAdapter(comfy.weight_adapter.LoRAAdapter):
    """DoRA as PEFT and LyCORIS define it: each output row of the *merged* weight `W + alpha/rank · up @ down` is
    rescaled to the stored magnitude. (ComfyUI 0.3.75 divides by the norm of the base weight instead when the
    magnitude is per output row.) The strength blends the base weight (0) into the DoRA weight (1), as ComfyUI
    does for its DoRA."""

    name = "dora"

    @classmethod
    def from_lora(cls, adapter: comfy.weight_adapter.LoRAAdapter) -> PeftDoRAAdapter:
        return cls(adapter.loaded_keys, adapter.weights)

    def calculate_weight(self, weight, key, strength, strength_model, offset, function,
                         intermediate_dtype=torch.float32, original_weight=None):
        up, down, alpha, mid, dora_scale, reshape = self.weights
        if mid is not None or reshape is not None or dora_scale is None or dora_scale.shape[0] != weight.shape[0]:
            return super().calculate_weight(weight, key, strength, strength_model, offset, function,
                                            intermediate_dtype, original_weight)
        cast = comfy.model_management.cast_to_device
        mat1 = cast(up, weight.device, intermediate_dtype)
        mat2 = cast(down, weight.device, intermediate_dtype)
        factor = alpha / mat2.shape[0] if alpha is not None else 1.0
        diff = (mat1.flatten(1) @ mat2.flatten(1)).reshape(weight.shape) * factor
        merged = weight.to(intermediate_dtype) + function(diff)
        norm = merged.reshape(merged.shape[0], -1).norm(dim=1).reshape(-1, *[1] * (merged.dim() - 1))
        norm = norm.clamp_min(torch.finfo(norm.dtype).eps)  # an all-zero row stays zero instead of NaN
        magnitude = cast(dora_scale, weight.device, intermediate_dtype).reshape(norm.shape)
        dora = merged * (magnitude / norm)
        weight += (strength * (dora - weight.to(intermediate_dtype))).to(weight.dtype)
        return weight


def lora_patches(model: LTXModel, tensors: dict[str, torch.Tensor], metadata: dict | None = None,
                 name: str = "LoRA") -> tuple[dict[str, Any], LoraMapping]:
    """ComfyUI patches `{parameter name: adapter}` for one LoRA file on `model`'s transformer, and its mapping.

    Raises `LoraError` with a sentence when the file does not fit (see `ltx_core.lora.mapping.map_lora`) or uses an
    adapter type this ComfyUI does not implement.
    """
    shapes = {key: tuple(value.shape) for key, value in model.transformer.state_dict().items()}
    mapping = map_lora(tensors, shapes, metadata, name=name)
    patches = comfy.lora.load_lora(mapping.state_dict, mapping.key_map, log_missing=False)
    not_loaded = []
    for module in mapping.modules:
        bias = module.target[: -len(".weight")] + ".bias" if module.target.endswith(".weight") else None
        if module.target not in patches and bias not in patches:
            not_loaded.append(module)
        elif module.kind == "dora" and isinstance(patches.get(module.target), comfy.weight_adapter.LoRAAdapter):
            patches[module.target] = PeftDoRAAdapter.from_lora(patches[module.target])
    if not_loaded:
        kinds = sorted({KIND_NAMES.get(m.kind, m.kind) for m in not_loaded})
        raise LoraError(f"'{name}' is not supported: {', '.join(kinds)} (this ComfyUI's weight adapters did not load "
                        f"{len(not_loaded)} of its layers, e.g. {not_loaded[0].file_prefix})")
    if mapping.unmatched:
        shown = ", ".join(mapping.unmatched[:8]) + (", ..." if len(mapping.unmatched) > 8 else "")
        logger.warning("LoRA %s: %d keys adapt nothing in the LTX-Video transformer and are ignored: %s", name,
                       len(mapping.unmatched), shown)
    return patches, mapping


def _casts_weights(model: torch.nn.Module, key: str) -> bool:
    """Whether the layer holding parameter `key` runs its weight functions (ComfyUI's casting layers do)."""
    module_name, _, _ = key.rpartition(".")
    try:
        module = comfy.utils.get_attr(model, module_name) if module_name else model
    except AttributeError:
        return False
    return bool(getattr(module, "comfy_cast_weights", False))


def attach_patches(patcher, patches: dict[str, Any], strength: float, fp8_keys: set[str] = frozenset()) -> None:
    """Add LoRA patches to a (cloned) ModelPatcher at `strength`.

    Weights stored in the compute dtype get ordinary patches (merged once when ComfyUI loads the model). Weights
    stored in fp8 get the same patches as weight functions instead, applied to the weight after it is cast to the
    compute dtype on every use, exactly like ComfyUI's low-VRAM patches: merging into fp8 storage would re-round
    every element of the weight (stochastically), which adds noise about as large as a typical LoRA's change.
    """
    on_the_fly = {key for key in patches if key in fp8_keys and _casts_weights(patcher.model, key)}
    merged = {key: patch for key, patch in patches.items() if key not in on_the_fly}
    added = patcher.add_patches(merged, strength)
    if len(added) != len(merged):
        missing = sorted(set(merged) - set(added))
        raise LoraError(f"{len(missing)} LoRA patches name no parameter of the transformer, e.g. {missing[0]}")
    for key in sorted(on_the_fly):
        patcher.add_weight_wrapper(key, comfy.model_patcher.LowVramPatch(key, {key: [(strength, patches[key], 1.0,
                                                                                      None, None)]}))


# ------------------------------------------------------------------------------------------------------------------
# Stacks


def _kind_of(value) -> str:
    return {str: "text", bool: "true/false", int: "number", float: "number", list: "list", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def parse_lora_stack(value) -> list[dict]:
    """Validate a LoRA list (JSON text, a list, or one object) into `[{"path", "weight_name", "scale"}]`.

    Raises ValueError with a sentence naming the entry and field that is wrong.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"the LoRA list is not valid JSON (line {error.lineno}, column {error.colno}: "
                             f"{error.msg}); write it like {STACK_EXAMPLE}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"the LoRA list must be a JSON list of objects with {', '.join(STACK_FIELDS)}, got a "
                         f"{_kind_of(value)}; for example {STACK_EXAMPLE}")
    entries = []
    for number, item in enumerate(value, start=1):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise ValueError(f"LoRA {number} must be an object with {', '.join(STACK_FIELDS)}, got a "
                             f"{_kind_of(item)}")
        unknown = [k for k in item if k not in STACK_FIELDS]
        if unknown:
            hint = " (the strength is called 'scale')" if any(k in ("strength", "weight") for k in unknown) else ""
            raise ValueError(f"LoRA {number} has unknown field(s) {', '.join(map(repr, unknown))}{hint}; the fields "
                             f"are {', '.join(STACK_FIELDS)}")
        path = item.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"LoRA {number} needs a 'path': a file in models/loras, an http(s) URL or a Hugging "
                             f"Face repo id")
        try:
            check_source(path.strip())
        except LoraSourceError as error:
            raise ValueError(f"LoRA {number}: {error}") from None
        weight_name = item.get("weight_name")
        if weight_name is not None and not isinstance(weight_name, str):
            raise ValueError(f"LoRA {number}: weight_name must be a file name (text) or null, got a "
                             f"{_kind_of(weight_name)}")
        scale = item.get("scale", 1.0)
        if not is_number(scale):
            raise ValueError(f"LoRA {number}: scale must be a finite number, got {scale!r}")
        entries.append({"path": path.strip(), "weight_name": (weight_name or "").strip() or None,
                        "scale": float(scale)})
    return entries


def _display_name(source: str) -> str:
    return redact_url(source) if is_url(source) else source


def _progress_bar():
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = comfy.utils.ProgressBar(total or max(done, 1))
        bar.update_absolute(done, total if total else max(done, bar.total))

    return progress


class LoraEntryError(ValueError):
    """One LoRA of a list could not be used; the message starts `LoRA <n> of <count>:` so that a caller (the HTTP
    API) can name the entry."""

    def __init__(self, number: int, count: int, error: Exception):
        super().__init__(f"LoRA {number} of {count}: {error}")
        self.number = number


def apply_lora_stack(model: LTXModel, stack: Iterable[dict] | str | None) -> LTXModel:
    """`model` with every LoRA of `stack` attached at its scale (one ModelPatcher clone; the input is untouched).

    Entries with scale 0 are skipped; an empty stack returns `model` itself. Sources are resolved (and downloaded
    when they are URLs) by `lora_sources.resolve_lora`. Errors are `ValueError`s with a sentence.
    """
    parsed = parse_lora_stack(stack if isinstance(stack, str) or stack is None else list(stack))
    entries = [(number, e) for number, e in enumerate(parsed, 1) if e["scale"] != 0.0]
    if not entries:
        return model
    patcher = model.patcher.clone()
    fp8_keys = {key for key, value in model.transformer.state_dict().items() if value.dtype in FP8_DTYPES}
    applied = []
    for number, entry in entries:
        name = _display_name(entry["path"])
        try:
            path = resolve_lora(entry["path"], entry["weight_name"], progress=_progress_bar())
            tensors, metadata = read_lora_file(path)
            patches, mapping = lora_patches(model, tensors, metadata, name=name)
        except (ValueError, OSError) as error:
            raise LoraEntryError(number, len(parsed), error) from error
        attach_patches(patcher, patches, entry["scale"], fp8_keys)
        logger.info("LoRA %s at scale %g", mapping.summary(), entry["scale"])
        in_context = is_ic_lora(entry["path"], entry["weight_name"] or "", str(path))
        applied.append({**entry, "file": path, "layers": len(mapping.modules), "formats": mapping.formats,
                        "in_context": in_context})
    result = model.with_patcher(patcher)
    result.extra["loras"] = list(model.extra.get("loras", [])) + applied
    return result


def warn_unguided_ic_loras(model: LTXModel, guided: bool) -> None:
    """An IC-LoRA run without its guide gives an unguided video and no error: say so, naming the file."""
    if guided:
        return
    for entry in model.extra.get("loras", []):
        if entry.get("in_context"):
            logger.warning("the IC-LoRA %s is attached but no guide is given: it only works with its control video "
                           "(depth, pose, canny, ...) in context; add an LTX-Video 0.9.7 Guide to the sampler's "
                           "conditions", _display_name(entry["path"]))


# ------------------------------------------------------------------------------------------------------------------
# Nodes

_SOURCE_HELP = ("An http(s) URL (downloaded once into models/loras/ltx097_downloads), a Hugging Face repo id "
                "('owner/name', with weight_name when the repo has several .safetensors files), or a file name in "
                "models/loras. Overrides lora_name when not empty. URLs must lead to public addresses unless "
                f"ComfyUI runs with {ALLOW_HOSTS_ENV} or {ALLOW_PRIVATE_ENV}=1, and carry no user name or "
                "password. Local paths outside the loras folders are refused unless ComfyUI runs with "
                f"{ALLOW_LOCAL_ENV}=1.")


class LTX097LoraLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097LoraLoader",
            display_name="LTX-Video 0.9.7 LoRA",
            category=f"{CATEGORY}/lora",
            description=(
                "Attaches a LoRA to the LTX-Video model at a strength; chain several for a stack. Reads diffusers/"
                "PEFT (LTX-Video trainer), ComfyUI and kohya files (LoRA, DoRA, LoHa, LoKr) and says which keys fit "
                "nothing. The checkpoint is not reloaded: ComfyUI patches the weights when the model runs, also "
                "for fp8 weights and in low-VRAM mode."
            ),
            inputs=[
                model_input("The LTX-Video model to attach the LoRA to (it is not changed; the output is a patched "
                            "copy)."),
                io.Combo.Input("lora_name", options=[NO_LORA] + lora_files(), default=NO_LORA,
                               tooltip="A .safetensors LoRA from models/loras (and extra_model_paths.yaml folders). "
                                       "'none' passes the model through, unless source is set."),
                io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.01,
                               tooltip="The LoRA scale: the weight change is strength · alpha / rank · up @ down "
                                       "(strength alone when the file has no alpha). 0 turns the LoRA off."),
                io.String.Input("source", default="", optional=True, tooltip=_SOURCE_HELP),
                io.String.Input("weight_name", default="", optional=True,
                                tooltip="For a Hugging Face repo source: the .safetensors file in the repo "
                                        "(needed when it holds several)."),
            ],
            outputs=[LTXModelType.Output(display_name="model", tooltip="The model with the LoRA attached.")],
        )

    @classmethod
    def validate_inputs(cls, source=None) -> bool | str:
        try:
            check_source((source or "").strip() if isinstance(source, str) else "")
        except LoraSourceError as error:
            return str(error)
        return True

    @classmethod
    def execute(cls, model: LTXModel, lora_name: str, strength: float, source: str = "",
                weight_name: str = "") -> io.NodeOutput:
        path = (source or "").strip() or (lora_name if lora_name != NO_LORA else "")
        if not path:
            return io.NodeOutput(model)
        return io.NodeOutput(apply_lora_stack(model, [{"path": path, "weight_name": weight_name or None,
                                                       "scale": strength}]))


class LTX097LoraStack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097LoraStack",
            display_name="LTX-Video 0.9.7 LoRA List",
            category=f"{CATEGORY}/lora",
            description=(
                "A list of LoRAs in the hosted service's shape, for the one-node text-to-video or 'Apply LoRA "
                "List': a JSON list of {\"path\", \"weight_name\", \"scale\"}, where path is a file in models/loras, "
                "an http(s) URL or a Hugging Face repo id. Chain lists through the optional input."
            ),
            inputs=[
                io.String.Input("loras", multiline=True, default="[]",
                                tooltip=f"JSON list, e.g. {STACK_EXAMPLE}. weight_name picks the file of a Hugging "
                                        f"Face repo; scale defaults to 1. Sources are fetched when the list is "
                                        f"applied."),
                LTXLoraStackType.Input("lora_stack", optional=True,
                                       tooltip="LoRAs to put before these (to chain lists)."),
            ],
            outputs=[LTXLoraStackType.Output(display_name="lora_stack", tooltip="The combined LoRA list.")],
        )

    @classmethod
    def validate_inputs(cls, loras=None) -> bool | str:
        return answer(parse_lora_stack, loras)

    @classmethod
    def execute(cls, loras: str, lora_stack: list | None = None) -> io.NodeOutput:
        return io.NodeOutput(list(lora_stack or []) + parse_lora_stack(loras))


class LTX097ApplyLoraStack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097ApplyLoraStack",
            display_name="LTX-Video 0.9.7 Apply LoRA List",
            category=f"{CATEGORY}/lora",
            description="Attaches every LoRA of a LoRA list to the model at its scale (like chained LoRA nodes).",
            inputs=[
                model_input("The LTX-Video model (not changed; the output is a patched copy)."),
                LTXLoraStackType.Input("lora_stack", tooltip="The LoRAs, from an LTX-Video 0.9.7 LoRA List node."),
            ],
            outputs=[LTXModelType.Output(display_name="model", tooltip="The model with the LoRAs attached.")],
        )

    @classmethod
    def execute(cls, model: LTXModel, lora_stack: list) -> io.NodeOutput:
        return io.NodeOutput(apply_lora_stack(model, lora_stack))


NODES = [LTX097LoraLoader, LTX097LoraStack, LTX097ApplyLoraStack]
