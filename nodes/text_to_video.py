"""Text to video in one node, with the parameters and defaults of the hosted LTX-Video 0.9.7 LoRA service.

Prompt encoding, (LoRAs,) sampling, decoding and saving are the same functions the separate nodes use.
"""

from __future__ import annotations

import logging

from comfy_api.latest import io, ui

from ..hosted import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    DEFAULT_FRAME_RATE,
    DEFAULT_FRAMES,
    DEFAULT_NEGATIVE_PROMPT,
    DEFAULT_RESOLUTION,
    DEFAULT_STEPS,
    VIDEO_SIZES,
)
from .decode import decode, iter_frames
from .enhancer import PromptEnhancerModels, default_enhancer, run_enhancer
from .inputs import (
    CATEGORY,
    check_number,
    clip_input,
    conditions_input,
    frame_rate_input,
    frames_input,
    guidance_input,
    hidden_unique_id,
    model_input,
    negative_prompt_input,
    prompt_input,
    recipe_input,
    save_inputs,
    seed_input,
    step_cache_input,
    steps_input,
    upsampler_input,
    vae_input,
    windows_input,
)
from .long_video import output_connected
from .lora import apply_lora_stack
from .ranges import MAX_FRAME_RATE, MAX_FRAMES, MIN_FRAME_RATE, MIN_FRAMES
from .recipe_choices import DEFAULT_RECIPE
from .run_log import emit
from .safety import SafetyChecker, check_conditions, check_generation, checked_stream, default_checker
from .sampler import as_latent, sample
from .sockets import LTXLoraStackType, LTXModel, LTXPromptEnhancerType, LTXSafetyCheckerType, LTXUpsampler, LTXVae
from .text import encode_prompt, encode_prompts
from .video import metadata_of, save_video

logger = logging.getLogger(__name__)

IMAGES_OUTPUT = 1


def video_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    if resolution not in VIDEO_SIZES:
        raise ValueError(f"resolution '{resolution}' is not one of {', '.join(VIDEO_SIZES)}")
    if aspect_ratio not in VIDEO_SIZES[resolution]:
        raise ValueError(f"aspect_ratio '{aspect_ratio}' is not one of {', '.join(ASPECT_RATIOS)}")
    return VIDEO_SIZES[resolution][aspect_ratio]


def with_loras(model: LTXModel, loras) -> LTXModel:
    """The model with a LoRA stack applied (a patched clone; the input model is not changed)."""
    return apply_lora_stack(model, loras) if loras else model


class LTX097TextToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097TextToVideo",
            display_name="LTX-Video 0.9.7 Text to Video",
            category=CATEGORY,
            description=(
                "Text (and optionally image/video) to video in one node, with the hosted LTX-Video 0.9.7 LoRA "
                "service's parameters and defaults: 720p 16:9 (1280×720), 89 frames at 25 fps, 30 steps. Saves "
                "the mp4 to the output folder and shows it; outputs the video, its frames, the prompt and the "
                "seed used."
            ),
            inputs=[
                model_input(),
                vae_input(),
                clip_input(),
                prompt_input(),
                negative_prompt_input(DEFAULT_NEGATIVE_PROMPT),
                io.Combo.Input("resolution", options=list(VIDEO_SIZES), default=DEFAULT_RESOLUTION,
                               tooltip="480p: 848×480, 480×480 or 480×848; 720p: 1280×720, 720×720 or 720×1280 "
                                       "(by aspect ratio)."),
                io.Combo.Input("aspect_ratio", options=list(ASPECT_RATIOS), default=DEFAULT_ASPECT_RATIO,
                               tooltip="16:9 landscape, 1:1 square, 9:16 portrait."),
                frames_input("number_of_frames", DEFAULT_FRAMES,
                             "Frames to generate (89 at 25 fps ≈ 3.6 s; 1441 ≈ 58 s). The model works on 8k+1 "
                             "frames; other counts are generated as the next 8k+1 and cut back. Longer than one "
                             "window (121 by default): generated window by window."),
                steps_input("number_of_steps",
                            "Denoising steps per pass (the 0.9.7 dev recipe's second pass runs the last 13 of 30). "
                            "The 0.9.7 distilled recipe runs its fixed 7 + 3 steps and ignores this."),
                frame_rate_input("Frames per second of the video (the model times the motion with it).",
                                 float(DEFAULT_FRAME_RATE)),
                seed_input("Seed of the noise. Leave the control on 'randomize' for a new video every run; the "
                           "seed used is an output."),
                recipe_input(),
                *save_inputs(),
                io.Boolean.Input("expand_prompt", default=False,
                                 tooltip="Rewrite a short prompt into a long literal description with an LLM before "
                                         "encoding (the prompt output is then the one used). Uses the connected "
                                         "prompt_enhancer, else models/LLM/Llama-3.2-3B-Instruct and "
                                         "models/LLM/blip-image-captioning-large."),
                io.Boolean.Input("enable_safety_checker", default=True,
                                 tooltip="Check the conditioning media and a sample of the generated frames with an "
                                         "NSFW classifier; flagged content stops the run and nothing is saved. "
                                         "Uses the connected safety_checker, else "
                                         "models/safety_checker/nsfw_image_detection/."),
                upsampler_input(),
                LTXLoraStackType.Input("loras", optional=True,
                                       tooltip="LoRAs to apply, with their strengths (LTX-Video 0.9.7 LoRA "
                                               "nodes)."),
                conditions_input(),
                LTXPromptEnhancerType.Input("prompt_enhancer", optional=True,
                                            tooltip="The prompt enhancer's models (Prompt Enhancer Loader), used "
                                                    "when expand_prompt is on."),
                LTXSafetyCheckerType.Input("safety_checker", optional=True,
                                           tooltip="The safety checker and its policy (Safety Checker Loader), used "
                                                   "when enable_safety_checker is on."),
                guidance_input(),
                step_cache_input(),
                windows_input(),
                io.Boolean.Input("split_prompt", default=True, optional=True,
                                 tooltip="Read lines holding only --- as separators of window prompts. Off: the "
                                         "prompt is encoded exactly as written (the HTTP API turns this off)."),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The saved mp4 as a core VIDEO."),
                io.Image.Output(display_name="images",
                                tooltip="The frames [frames, height, width, 3] (gathered only when this output is "
                                        "connected: a long video otherwise goes to the mp4 chunk by chunk)."),
                io.String.Output(display_name="prompt", tooltip="The prompt used."),
                io.Int.Output(display_name="seed", tooltip="The seed used."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, frame_rate: float = DEFAULT_FRAME_RATE) -> bool | str:
        return check_number("frame_rate", frame_rate, MIN_FRAME_RATE, MAX_FRAME_RATE)

    @classmethod
    def execute(cls, model: LTXModel, vae: LTXVae, clip, prompt: str,
                negative_prompt: str = DEFAULT_NEGATIVE_PROMPT, resolution: str = DEFAULT_RESOLUTION,
                aspect_ratio: str = DEFAULT_ASPECT_RATIO, number_of_frames: int = DEFAULT_FRAMES,
                number_of_steps: int = DEFAULT_STEPS, frame_rate: float = DEFAULT_FRAME_RATE, seed: int = 0,
                recipe: str = DEFAULT_RECIPE, filename_prefix: str = "LTX-Video/ltxv097", crf: int = 19,
                reverse_video: bool = False, expand_prompt: bool = False, enable_safety_checker: bool = True,
                upsampler: LTXUpsampler | None = None, loras=None,
                conditions=None, prompt_enhancer: PromptEnhancerModels | None = None,
                safety_checker: SafetyChecker | None = None, guidance: dict | None = None,
                windows: dict | None = None, step_cache: float = 0.0, split_prompt: bool = True) -> io.NodeOutput:
        width, height = video_size(resolution, aspect_ratio)
        if not MIN_FRAMES <= number_of_frames <= MAX_FRAMES:
            raise ValueError(f"number_of_frames={number_of_frames} is out of range ({MIN_FRAMES}–{MAX_FRAMES})")
        steps: int | None = number_of_steps  # a recipe with fixed timesteps leaves it out (`recipe_models`)
        checker = (safety_checker or default_checker()) if enable_safety_checker else None
        if expand_prompt:
            emit("expand: the prompt (LLM)")
            prompt = run_enhancer(prompt_enhancer or default_enhancer(), prompt, conditions, seed=seed).prompt
        emit("encode: prompt and negative prompt (T5)")
        positive, negative = encode_prompts(clip, prompt, split_prompt), encode_prompt(clip, negative_prompt)
        latents = sample(with_loras(model, loras), vae, positive, negative, recipe=recipe, width=width,
                         height=height, num_frames=number_of_frames, frame_rate=frame_rate, seed=seed, steps=steps,
                         conditions=conditions, upsampler=upsampler, guidance=guidance, windows=windows,
                         node_id=hidden_unique_id(cls), step_cache=step_cache)
        emit("decode: latents to frames (VAE)")
        frames = chunks = None
        # The frames are held whole only when something needs them all: reversing, the images output, or a
        # checker that blacks frames out; otherwise they stream from the VAE into the mp4 (checked on the way).
        if reverse_video or output_connected(cls, IMAGES_OUTPUT) or (checker and checker.on_flagged != "stop"):
            frames, _ = decode(vae, as_latent(latents))
            if reverse_video:
                frames = frames.flip(0)
            if checker is not None:
                frames = check_generation(checker, frames, conditions)
        else:
            chunks = iter_frames(vae, as_latent(latents))
            if checker is not None:
                check_conditions(checker, conditions)
                chunks = checked_stream(checker, chunks, number_of_frames)
        emit(f"save: {number_of_frames} frames of {width}×{height} px at {frame_rate:g} fps (mp4)")
        _path, saved, video = save_video(chunks if frames is None else frames, frame_rate,
                                         filename_prefix=filename_prefix, crf=crf, metadata=metadata_of(cls),
                                         size=(width, height))
        # The prompt used goes into the UI output too, so the history (and the HTTP API's result) has it.
        return io.NodeOutput(video, frames, prompt, seed, ui={**ui.PreviewVideo([saved]).as_dict(),
                                                               "prompt": [prompt]})


NODES = [LTX097TextToVideo]
