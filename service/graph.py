"""One request as an API-format ComfyUI prompt: the one-node Text to Video workflow, built from the config.

Model loaders (checkpoint, upsampler, text encoder) → optional LoRA list, image / video condition and guidance →
`LTX097TextToVideo`, saving under `ltxv097_api/<request id>` in the output folder. Pure Python: it only needs the
names of the node's inputs (from the running host) to know whether `expand_prompt` / `enable_safety_checker` exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .config import ServiceConfig, uses_upsampler
from .schema import GenerationInput, InputError, field_error

OUTPUT_NODE = "text_to_video"
LITERAL_PROMPT_INPUT = "split_prompt"
"""The node input that splits a prompt into window prompts at `---` lines; the API's prompt is taken literally."""
OUTPUT_SUBFOLDER = "ltxv097_api"
CONDITION_CRF = 29
"""H.264 CRF the condition media is compressed with before encoding, as the official pipeline does."""


class UnavailableFeature(InputError):
    """A field the request turned on that this server cannot honour (422 naming the field)."""


def _condition_nodes(prompt: dict, generation: GenerationInput, media_files: list[str]) -> list | None:
    link = None
    for number, condition in enumerate(generation.conditions):
        file_name = media_files[number]
        load_id, cond_id = f"load_{condition.kind}_{number}", f"{condition.kind}_condition_{number}"
        if condition.kind == "image":
            prompt[load_id] = {"class_type": "LoadImage", "inputs": {"image": file_name}}
            inputs = {"image": [load_id, 0], "start_frame": condition.start_frame_number, "batch_index": 0,
                      "strength": condition.strength, "crf": CONDITION_CRF}
            prompt[cond_id] = {"class_type": "LTX097ImageCondition", "inputs": inputs}
        else:
            prompt[load_id] = {"class_type": "LoadVideo", "inputs": {"file": file_name}}
            inputs = {"video": [load_id, 0], "start_frame": condition.start_frame_number,
                      "strength": condition.strength, "crf": CONDITION_CRF}
            prompt[cond_id] = {"class_type": "LTX097VideoCondition", "inputs": inputs}
        if link is not None:
            inputs["conditions"] = link
        link = [cond_id, 0]
    return link


FEATURE_SETTINGS = {"expand_prompt": "default_expand_prompt", "enable_safety_checker": "default_enable_safety_checker"}
"""The ltxv097_api.json setting that gives each switchable feature its default."""


def feature_inputs(generation: GenerationInput, node_inputs: Iterable[str],
                   missing_models: dict[str, str] | None = None) -> dict:
    """`expand_prompt` / `enable_safety_checker` (and the literal prompt switch) for the node when it has them; a
    422 when a feature is switched on and the node lacks it or its model is missing (`missing_models`: field →
    the model folder relative to ComfyUI's models folder)."""
    names = set(node_inputs)
    values = {LITERAL_PROMPT_INPUT: False} if LITERAL_PROMPT_INPUT in names else {}
    errors = []
    for field, setting in FEATURE_SETTINGS.items():
        wanted = getattr(generation, field)
        if field in names:
            values[field] = wanted
        if not wanted:
            continue
        if field not in names and field == "expand_prompt":  # an older node: checking is not a reason to refuse
            errors.append(field_error((field,), f"{field} is not available on this server; send {field}: false"))
        elif (missing_models or {}).get(field):
            errors.append(field_error((field,), f"{field} needs a model this server does not have: "
                                                f"models/{missing_models[field]} is missing. Install it there, send "
                                                f"{field}: false, or set \"{setting}\": false in ltxv097_api.json",
                                      "model_missing"))
    if errors:
        raise UnavailableFeature(errors)
    return values


def build_prompt(generation: GenerationInput, config: ServiceConfig, request_id: str, *,
                 node_inputs: Iterable[str], media_files: list[str] | None = None) -> dict:
    """The API prompt; `media_files` holds each condition's file in ComfyUI's input folder, in order."""
    loader = config.text_encoder_loader
    prompt: dict = {
        "model": {"class_type": "LTX097ModelLoader",
                  "inputs": {"ckpt_name": config.checkpoint, "weight_dtype": config.weight_dtype}},
        "text_encoder": {"class_type": loader["node"],
                         "inputs": {loader["file_input"]: config.text_encoder, **loader.get("inputs", {})}},
    }
    inputs = {
        "model": ["model", 0], "vae": ["model", 1], "clip": ["text_encoder", 0],
        "prompt": generation.prompt, "negative_prompt": generation.negative_prompt,
        "resolution": generation.resolution, "aspect_ratio": generation.aspect_ratio,
        "number_of_frames": generation.number_of_frames, "number_of_steps": generation.number_of_steps,
        "frame_rate": float(generation.frame_rate), "seed": generation.seed, "recipe": config.recipe,
        "filename_prefix": f"{OUTPUT_SUBFOLDER}/{request_id}", "crf": config.crf,
        "reverse_video": generation.reverse_video,
        **feature_inputs(generation, node_inputs),
    }
    if config.upsampler and uses_upsampler(config.recipe):
        prompt["upsampler"] = {"class_type": "LTX097UpsamplerLoader",
                               "inputs": {"upscale_model_name": config.upsampler, "dtype": "auto"}}
        inputs["upsampler"] = ["upsampler", 0]
    if generation.loras:
        prompt["loras"] = {"class_type": "LTX097LoraStack",
                           "inputs": {"loras": json.dumps([lora.as_json() for lora in generation.loras])}}
        inputs["loras"] = ["loras", 0]
    if config.guidance:
        prompt["guidance"] = {"class_type": "LTX097GuidanceSettings", "inputs": dict(config.guidance)}
        inputs["guidance"] = ["guidance", 0]
    conditions = _condition_nodes(prompt, generation, media_files or [])
    if conditions is not None:
        inputs["conditions"] = conditions
    prompt[OUTPUT_NODE] = {"class_type": "LTX097TextToVideo", "inputs": inputs}
    return prompt
