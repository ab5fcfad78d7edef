"""The shipped workflows as data: which nodes, widget values, links and notes each graph has.

`make_workflows.py` builds these graphs in ComfyUI's real frontend and saves what it serialises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]

WORKFLOWS_DIR = ROOT / "workflows"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACK_ID = PYPROJECT["project"]["name"]
PACK_VERSION = PYPROJECT["project"]["version"]
PACK_REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
PACK_PROPERTIES = {"cnr_id": PACK_ID, "aux_id": PACK_REPOSITORY.removeprefix("https://github.com/"),
                   "ver": PACK_VERSION}
"""What each of this pack's nodes carries in `properties`, as the frontend stamps nodes of installed packs: a
ComfyUI without the pack names it (registry id, GitHub repository) for the missing nodes, and the Manager can
offer the install."""
CORE_PACK_ID = "comfy-core"
FRONTEND_VERSION = "1.32.9"

HF = "https://huggingface.co/Lightricks/LTX-Video/resolve/main/"
DEV = {"name": "ltxv-13b-0.9.7-dev.safetensors", "url": HF + "ltxv-13b-0.9.7-dev.safetensors",
       "directory": "checkpoints"}
DISTILLED = {"name": "ltxv-13b-0.9.7-distilled.safetensors", "url": HF + "ltxv-13b-0.9.7-distilled.safetensors",
             "directory": "checkpoints"}
UPSCALER = {"name": "ltxv-spatial-upscaler-0.9.7.safetensors", "url": HF + "ltxv-spatial-upscaler-0.9.7.safetensors",
            "directory": "latent_upscale_models"}
T5 = {"name": "t5xxl_fp16.safetensors",
      "url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
      "directory": "text_encoders"}
LORA_EXAMPLE = "my_ltxv_13b_0.9.7_lora.safetensors"
CANNY_LORA = {"name": "ltxv-097-ic-lora-canny-control-comfyui.safetensors",
              "url": "https://huggingface.co/Lightricks/LTX-Video-ICLoRA-canny-13b-0.9.7/resolve/main/"
                     "ltxv-097-ic-lora-canny-control-comfyui.safetensors",
              "directory": "loras"}

NEGATIVE = "blurry, low quality, low resolution, inconsistent motion, jittery, distorted"
BEACH = ("A woman with long brown hair walks barefoot along a sunlit beach at golden hour, the camera tracking "
         "beside her at shoulder height. Small waves roll in and wash over the wet sand, leaving glistening foam "
         "around her feet. Her white linen dress moves in the warm breeze and her hair catches the low orange "
         "light. Seagulls glide over the water behind her and the sun sits just above the horizon. Cinematic, "
         "shallow depth of field, soft natural light.")
FOX = ("A red fox trots through a snowy pine forest in the early morning, its thick russet coat bright against the "
       "white snow. The camera follows it at ground level as it leaves a line of paw prints, pauses, lifts its "
       "head and looks around while its breath steams in the cold air. Soft snow falls between the dark tree "
       "trunks and pale blue light filters through the branches. Realistic, detailed fur, gentle camera motion.")
DRAWING = ("A hand-drawn cartoon girl with big yellow hair and a pink dress stands on a bright green hill under a "
           "blue sky. She waves both arms up and down and bounces happily while her hair sways, and the white "
           "clouds drift slowly to the right. The crayon-like drawing style, the flat colours and the outlines stay "
           "the same; the camera is still.")
KEYFRAMES = ("A smooth, continuous shot that moves from the first frame to the last: the camera glides forward "
             "while the scene changes gradually, with natural motion, consistent lighting and the same subject "
             "throughout. Describe here what happens between your first and last image.")
CONTROL = ("A knight in polished silver armour walks through a misty medieval courtyard at dawn, the camera "
           "following at shoulder height; soft golden light falls through the fog onto wet cobblestones.")
RESTYLE = ("The same scene and the same motion as the input video, filmed as a warm cinematic shot at sunset with "
           "soft golden light, gentle film grain and rich colours. Describe the content of your video here.")

STORY = ("A small red sailboat leaves a quiet harbour at sunrise, the camera gliding alongside at water level. "
         "Gulls circle the mast, the calm sea shines gold and pink, and fishing boats rest at the wooden pier "
         "behind it. Realistic, gentle camera motion, soft morning light.\n"
         "---\n"
         "The small red sailboat cuts through open sea under a bright blue sky, its white sail full of wind. Waves "
         "break against the bow and spray catches the sunlight; the camera follows from the side at water level. "
         "Realistic, steady motion.\n"
         "---\n"
         "The small red sailboat sails toward a rocky island with a white lighthouse as the sky turns orange at "
         "sunset. The wind calms, the sea goes smooth and the camera slowly rises above the boat. Realistic, warm "
         "evening light.")
EXTEND = ("The same scene continues naturally: the same subject, setting, lighting and camera motion as the end of "
          "the input clip, with smooth, realistic motion. Describe what happens next here.")

NOTE_COLOR = {"color": "#432", "bgcolor": "#653"}
PROMPT_COLOR = {"color": "#232", "bgcolor": "#353"}
NEGATIVE_COLOR = {"color": "#322", "bgcolor": "#533"}


@dataclass
class Node:
    key: str
    type: str
    pos: tuple[float, float]
    widgets: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    size: tuple[float, float] | None = None
    colors: dict | None = None
    models: list[dict] | None = None


@dataclass
class Workflow:
    name: str
    summary: str
    nodes: list[Node]
    links: list[tuple[str, str, str, str]]  # (from node, output name, to node, input name)
    groups: list[tuple[str, list[str]]]  # (title, node keys)


# ----------------------------------------------------------------------------------------------------------------
# Notes


def model_row(model: dict, what: str) -> str:
    return f"| [{model['name']}]({model['url']}) | {what} | `ComfyUI/models/{model['directory']}/` |"


def models_note(*rows: str, extra: str = "") -> str:
    return "\n".join([
        "## Model files",
        "",
        "| file | what | put it in |",
        "| --- | --- | --- |",
        *rows,
        "",
        "The loaders also list `models/diffusion_models/` (checkpoints), `models/upscale_models/` (upsampler) and "
        "`models/clip/` (text encoder), and folders added in `extra_model_paths.yaml`. The `-fp8` checkpoints "
        "load in the same node and need about half the memory.",
        *(["", extra] if extra else []),
    ])


def t5_row() -> str:
    return model_row(T5, "T5-XXL text encoder (Load CLIP, type **ltxv**)")


def upscaler_row() -> str:
    return model_row(UPSCALER, "spatial latent upsampler (multi-scale recipes)")


def checker_row() -> str:
    return ("| [nsfw_image_detection](https://huggingface.co/Falconsai/nsfw_image_detection) (`config.json`, "
            "`preprocessor_config.json`, `model.safetensors`, 343 MB, Apache-2.0) | safety checker "
            "(`enable_safety_checker`, on by default) | `ComfyUI/models/safety_checker/nsfw_image_detection/` |")


def prompt_note(extra: str = "") -> str:
    return ("LTX-Video follows long, literal prompts best: describe the subject, the motion, the setting and the "
            "camera in a few sentences (up to about 190 words are read). " + extra).strip()


# ----------------------------------------------------------------------------------------------------------------
# The graphs (positions in canvas pixels; sizes grow to what the frontend needs)


def loaders(checkpoint: dict, x: float = 0, y: float = 0) -> list[Node]:
    return [
        Node("model", "LTX097ModelLoader", (x, y), {"ckpt_name": checkpoint["name"], "weight_dtype": "auto"},
             size=(360, 82), models=[checkpoint]),
        Node("upsampler", "LTX097UpsamplerLoader", (x, y + 150),
             {"upscale_model_name": UPSCALER["name"], "dtype": "auto"}, size=(360, 82), models=[UPSCALER]),
        Node("clip", "CLIPLoader", (x, y + 300), {"clip_name": T5["name"], "type": "ltxv", "device": "default"},
             size=(360, 106), models=[T5]),
    ]


def encode(prompt: str, x: float, y: float) -> Node:
    return Node("encode", "LTX097TextEncode", (x, y), {"prompt": prompt, "negative_prompt": NEGATIVE},
                size=(440, 330), colors=PROMPT_COLOR)


def sampler(x: float, y: float, recipe: str, width: int = 768, height: int = 512, frames: int = 97,
            seed: int = 42) -> Node:
    return Node("sampler", "LTX097Sampler", (x, y),
                {"recipe": recipe, "width": width, "height": height, "num_frames": frames, "frame_rate": 25.0,
                 "steps": 30, "seed": seed, "control_after_generate": "randomize"}, size=(330, 330))


def decode_save(x: float, y: float, prefix: str) -> list[Node]:
    return [
        Node("decode", "LTX097Decode", (x, y),
             {"decode_timestep": 0.05, "decode_noise_scale": 0.025, "chunk_frames": 0}, size=(300, 150)),
        Node("save", "LTX097SaveVideo", (x, y + 230),
             {"frame_rate": 25.0, "filename_prefix": prefix, "crf": 19, "reverse_video": False},
             size=(420, 520)),
    ]


def sampler_links(model_from: str = "model") -> list[tuple[str, str, str, str]]:
    return [
        (model_from, "model", "sampler", "model"), ("model", "vae", "sampler", "vae"),
        ("encode", "positive", "sampler", "positive"), ("encode", "negative", "sampler", "negative"),
        ("upsampler", "upsampler", "sampler", "upsampler"), ("clip", "CLIP", "encode", "clip"),
        ("sampler", "latent", "decode", "samples"), ("model", "vae", "decode", "vae"),
        ("decode", "images", "save", "images"), ("decode", "frame_rate", "save", "frame_rate"),
    ]


def note(key: str, text: str, x: float, y: float, width: float = 440, height: float = 200,
         markdown: bool = True) -> Node:
    title = "Model files: where they go" if key == "files" else "Prompt tips"
    return Node(key, "MarkdownNote" if markdown else "Note", (x, y), {"$text": text}, title=title,
                size=(width, height), colors=NOTE_COLOR)


def tips(text: str, height: float = 110) -> Node:
    """The prompt note, above the prompt."""
    return note("prompt_tips", text, 420, -110 - height, 440, height, markdown=False)


def text_to_video_lora() -> Workflow:
    lora_text = (f"**LoRA**: put your LoRA for LTX-Video 13B 0.9.7 (`.safetensors`) in `ComfyUI/models/loras/` "
                 f"and pick it in the LoRA node (`{LORA_EXAMPLE}` is a placeholder name). Files from the LTX-Video "
                 "trainer, diffusers/PEFT, ComfyUI and kohya all load; chain more LoRA nodes for several. Strength "
                 "0 turns one off.")
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row(), extra=lora_text), -520, 0, 480, 430),
        *loaders(DEV),
        Node("lora", "LTX097LoraLoader", (0, 480), {"lora_name": LORA_EXAMPLE, "strength": 1.0, "source": "",
                                                    "weight_name": ""}, size=(360, 130)),
        encode(BEACH, 420, 0),
        tips(prompt_note("Add your LoRA's trigger words to the prompt if it has any.")),
        sampler(900, 0, "0.9.7 dev multi-scale"),
        *decode_save(1270, 0, "LTX-Video/t2v_lora"),
    ]
    links = [("model", "model", "lora", "model"), *sampler_links("lora")]
    return Workflow("ltxv097_text_to_video_lora", "Text to video with a LoRA, 0.9.7 dev multi-scale recipe", nodes,
                    links, [("Models", ["model", "upsampler", "clip", "lora"]), ("Prompt", ["encode"]),
                            ("Generate", ["sampler", "decode", "save"])])


def text_to_video_distilled() -> Workflow:
    nodes = [
        note("files", models_note(model_row(DISTILLED, "LTX-Video 13B 0.9.7 distilled (transformer + VAE)"),
                                  upscaler_row(), t5_row(),
                                  extra="The distilled recipe runs 7 + 3 fixed steps without guidance: several "
                                        "times faster than the dev recipe; it does not use the steps widget."),
             -520, 0, 480, 400),
        *loaders(DISTILLED),
        encode(FOX, 420, 0),
        tips(prompt_note(), 90),
        sampler(900, 0, "0.9.7 distilled multi-scale"),
        *decode_save(1270, 0, "LTX-Video/t2v_distilled"),
    ]
    return Workflow("ltxv097_text_to_video_distilled", "Fast text to video, 0.9.7 distilled multi-scale recipe",
                    nodes, sampler_links(),
                    [("Models", ["model", "upsampler", "clip"]), ("Prompt", ["encode"]),
                     ("Generate", ["sampler", "decode", "save"])])


def image_to_video() -> Workflow:
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row()), -520, 0, 480, 330),
        *loaders(DEV),
        Node("image", "LoadImage", (0, 500), {"image": "example.png", "upload": "image"}, size=(360, 380)),
        Node("condition", "LTX097ImageCondition", (420, 500),
             {"start_frame": 0, "strength": 1.0, "crf": 29, "batch_index": 0}, size=(330, 170)),
        encode(DRAWING, 420, 0),
        tips(prompt_note("Describe the motion you want from the image. The image is centre-"
                                        "cropped to the video's aspect ratio and pinned to frame 0."), 120),
        sampler(900, 0, "0.9.7 dev multi-scale", width=704, height=704),
        *decode_save(1270, 0, "LTX-Video/i2v"),
    ]
    links = [*sampler_links(), ("image", "IMAGE", "condition", "image"),
             ("condition", "conditions", "sampler", "conditions")]
    return Workflow("ltxv097_image_to_video", "Image to video: the image is the first frame", nodes, links,
                    [("Models", ["model", "upsampler", "clip"]), ("Prompt", ["encode"]),
                     ("Start image", ["image", "condition"]), ("Generate", ["sampler", "decode", "save"])])


def first_last_keyframes() -> Workflow:
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row()), -520, 0, 480, 330),
        *loaders(DEV),
        Node("first_image", "LoadImage", (0, 500), {"image": "first_frame.png", "upload": "image"},
             title="First frame", size=(360, 380)),
        Node("last_image", "LoadImage", (0, 960), {"image": "last_frame.png", "upload": "image"},
             title="Last frame", size=(360, 380)),
        Node("first", "LTX097ImageCondition", (420, 500),
             {"start_frame": 0, "strength": 1.0, "crf": 29, "batch_index": 0}, title="First frame condition",
             size=(330, 170)),
        Node("last", "LTX097ImageCondition", (420, 960),
             {"start_frame": -1, "strength": 1.0, "crf": 29, "batch_index": 0}, title="Last frame condition",
             size=(330, 170)),
        encode(KEYFRAMES, 420, 0),
        tips(prompt_note("Upload your first and last image (same aspect ratio as the video works "
                                        "best). The last condition's start_frame -1 pins it to the last frame; "
                                        "set another frame number for a keyframe in the middle."), 140),
        sampler(900, 0, "0.9.7 dev multi-scale"),
        *decode_save(1270, 0, "LTX-Video/keyframes"),
    ]
    links = [*sampler_links(), ("first_image", "IMAGE", "first", "image"), ("last_image", "IMAGE", "last", "image"),
             ("first", "conditions", "last", "conditions"), ("last", "conditions", "sampler", "conditions")]
    return Workflow("ltxv097_first_last_keyframes", "First and last frame keyframes", nodes, links,
                    [("Models", ["model", "upsampler", "clip"]), ("Prompt", ["encode"]),
                     ("Keyframes", ["first_image", "last_image", "first", "last"]),
                     ("Generate", ["sampler", "decode", "save"])])


def video_to_video() -> Workflow:
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row()), -520, 0, 480, 330),
        *loaders(DEV),
        Node("video", "LoadVideo", (0, 500), {"file": "input_video.mp4", "upload": "image"}, size=(360, 380)),
        Node("condition", "LTX097VideoCondition", (420, 500), {"start_frame": 0, "strength": 0.8, "crf": 29},
             size=(330, 150)),
        encode(RESTYLE, 420, 0),
        tips(prompt_note("Upload a video (its first 8k+1 frames that fit are used, centre-cropped "
                                        "to the output's aspect ratio). Strength 1 keeps the input frames; lower "
                                        "values let the prompt change them more."), 140),
        sampler(900, 0, "0.9.7 dev multi-scale"),
        *decode_save(1270, 0, "LTX-Video/v2v"),
    ]
    links = [*sampler_links(), ("video", "VIDEO", "condition", "video"),
             ("condition", "conditions", "sampler", "conditions")]
    return Workflow("ltxv097_video_to_video", "Video to video: a clip guides the new video", nodes, links,
                    [("Models", ["model", "upsampler", "clip"]), ("Prompt", ["encode"]),
                     ("Input video", ["video", "condition"]), ("Generate", ["sampler", "decode", "save"])])


def ic_lora_control() -> Workflow:
    control_text = ("**IC-LoRA control**: the Canny edges of the input video guide the new video through the canny "
                    "IC-LoRA (the LoRA node). The Guide gives the edges to the model in context, at the frames they "
                    "belong to; they are not in the output. For depth or pose control load the depth / pose "
                    "IC-LoRA (`ltxv-097-ic-lora-depth-control-comfyui.safetensors`, `...-pose-...`) and replace "
                    "Canny by a depth or pose preprocessor from another pack (e.g. ComfyUI's ControlNet "
                    "preprocessors: Depth Anything, DWPose). Without a guide an IC-LoRA does nothing useful.")
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row(), model_row(CANNY_LORA, "canny control IC-LoRA"), extra=control_text),
             -520, 0, 480, 520),
        *loaders(DEV),
        Node("lora", "LTX097LoraLoader", (0, 480), {"lora_name": CANNY_LORA["name"], "strength": 1.0, "source": "",
                                                    "weight_name": ""}, size=(360, 130), models=[CANNY_LORA]),
        Node("video", "LoadVideo", (0, 680), {"file": "control_video.mp4", "upload": "image"}, size=(360, 380)),
        Node("frames", "GetVideoComponents", (420, 680), {}, size=(260, 90)),
        Node("canny", "Canny", (420, 830), {"low_threshold": 0.4, "high_threshold": 0.8}, size=(300, 90)),
        Node("guide", "LTX097Guide", (760, 680), {"start_frame": 0, "strength": 1.0}, size=(330, 130)),
        encode(CONTROL, 420, 0),
        tips(prompt_note("Describe what the video should look like; the motion and layout come from the "
                         "control video's edges."), 110),
        sampler(900, 0, "0.9.7 dev multi-scale"),
        *decode_save(1270, 0, "LTX-Video/ic_lora_control"),
    ]
    links = [("model", "model", "lora", "model"), *sampler_links("lora"), ("video", "VIDEO", "frames", "video"),
             ("frames", "images", "canny", "image"), ("canny", "IMAGE", "guide", "images"),
             ("guide", "conditions", "sampler", "conditions")]
    return Workflow("ltxv097_ic_lora_control", "Control with an IC-LoRA: Canny edges of a video guide the new one",
                    nodes, links, [("Models", ["model", "upsampler", "clip", "lora"]), ("Prompt", ["encode"]),
                                   ("Control video", ["video", "frames", "canny", "guide"]),
                                   ("Generate", ["sampler", "decode", "save"])])


def text_to_video_one_node() -> Workflow:
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row(), checker_row(),
                                  extra="For the fast recipe pick `ltxv-13b-0.9.7-distilled.safetensors` "
                                                  "in the loader and `0.9.7 distilled multi-scale` as the recipe. "
                                                  "LoRAs: list them in the LoRA List node, e.g. "
                                                  '`[{"path": "my_lora.safetensors", "scale": 0.8}]` (files in '
                                                  "`models/loras/`). `expand_prompt` needs an instruct LLM and a "
                                                  "BLIP captioner in `models/LLM/` (see the pack's README)."),
             -520, 0, 480, 470),
        *loaders(DEV),
        Node("loras", "LTX097LoraStack", (0, 480), {"loras": "[]"}, size=(360, 120)),
        Node("t2v", "LTX097TextToVideo", (420, 0),
             {"prompt": BEACH, "negative_prompt": NEGATIVE, "resolution": "720p", "aspect_ratio": "16:9",
              "number_of_frames": 89, "number_of_steps": 30, "frame_rate": 25.0, "seed": 42,
              "control_after_generate": "randomize", "recipe": "0.9.7 dev multi-scale",
              "filename_prefix": "LTX-Video/t2v", "crf": 19, "reverse_video": False, "expand_prompt": False,
              "enable_safety_checker": True}, size=(460, 900),
             colors=PROMPT_COLOR),
        Node("preview", "PreviewAny", (940, 0), {}, title="Seed used", size=(260, 100)),
    ]
    links = [("model", "model", "t2v", "model"), ("model", "vae", "t2v", "vae"), ("clip", "CLIP", "t2v", "clip"),
             ("upsampler", "upsampler", "t2v", "upsampler"), ("loras", "lora_stack", "t2v", "loras"),
             ("t2v", "seed", "preview", "source")]
    return Workflow("ltxv097_text_to_video_one_node", "Text to video in one node (hosted-service parameters)", nodes,
                    links, [("Models", ["model", "upsampler", "clip", "loras"])])


def long_video() -> Workflow:
    windows_text = ("**Long video**: 750 frames (30 s at 25 fps) are generated in windows of 121 frames that "
                    "overlap by 24 (Long Video Settings): each window continues the end of the one before, its "
                    "colours are matched to the first window (AdaIN 0.5) and the overlaps are cross-faded. The "
                    "prompt holds one prompt per window, separated by lines with only `---`; the last one repeats "
                    "for the remaining windows. 8 windows cost about 8× one 121-frame video; memory stays that of "
                    "one window and the mp4 is written as the frames come. For more quality use the dev checkpoint "
                    "and the `0.9.7 dev multi-scale` recipe.")
    nodes = [
        note("files", models_note(model_row(DISTILLED, "LTX-Video 13B 0.9.7 distilled (transformer + VAE)"),
                                  upscaler_row(), t5_row(), extra=windows_text), -520, 0, 480, 520),
        *loaders(DISTILLED),
        Node("windows", "LTX097LongVideoSettings", (0, 480),
             {"window_frames": 121, "overlap_frames": 24, "temporal_adain_factor": 0.5}, size=(360, 130)),
        Node("t2v", "LTX097TextToVideo", (420, 0),
             {"prompt": STORY, "negative_prompt": NEGATIVE, "resolution": "480p", "aspect_ratio": "16:9",
              "number_of_frames": 750, "number_of_steps": 30, "frame_rate": 25.0, "seed": 42,
              "control_after_generate": "randomize", "recipe": "0.9.7 distilled multi-scale",
              "filename_prefix": "LTX-Video/long_video", "crf": 19, "reverse_video": False}, size=(460, 900),
             colors=PROMPT_COLOR),
        Node("preview", "PreviewAny", (940, 0), {}, title="Seed used", size=(260, 100)),
    ]
    links = [("model", "model", "t2v", "model"), ("model", "vae", "t2v", "vae"), ("clip", "CLIP", "t2v", "clip"),
             ("upsampler", "upsampler", "t2v", "upsampler"), ("windows", "windows", "t2v", "windows"),
             ("t2v", "seed", "preview", "source")]
    return Workflow("ltxv097_long_video", "A 30 s video in windows, one prompt per window", nodes, links,
                    [("Models", ["model", "upsampler", "clip", "windows"])])


def extend_clip() -> Workflow:
    nodes = [
        note("files", models_note(model_row(DEV, "LTX-Video 13B 0.9.7 dev (transformer + VAE)"), upscaler_row(),
                                  t5_row(), extra="**Extend**: the new frames continue the clip's last 25 frames "
                                                  "(`direction` prepend: they lead into its first ones). The clip's "
                                                  "own frames are kept as they are; only the new frames are "
                                                  "generated, window by window when there are many."),
             -520, 0, 480, 400),
        *loaders(DEV),
        Node("video", "LoadVideo", (0, 500), {"file": "input_video.mp4", "upload": "image"}, size=(360, 380)),
        encode(EXTEND, 420, 0),
        tips(prompt_note("Describe how the clip goes on: same subject and setting, the motion that follows."), 120),
        Node("extend", "LTX097ExtendVideo", (900, 0),
             {"new_frames": 96, "direction": "append", "context_frames": 25, "recipe": "0.9.7 dev multi-scale",
              "steps": 0, "seed": 42, "control_after_generate": "randomize", "frame_rate": 25.0,
              "filename_prefix": "LTX-Video/extended", "crf": 19, "reverse_video": False}, size=(420, 820)),
    ]
    links = [("model", "model", "extend", "model"), ("model", "vae", "extend", "vae"),
             ("clip", "CLIP", "encode", "clip"), ("encode", "positive", "extend", "positive"),
             ("encode", "negative", "extend", "negative"), ("upsampler", "upsampler", "extend", "upsampler"),
             ("video", "VIDEO", "extend", "video")]
    return Workflow("ltxv097_extend_clip", "Extend a clip: 96 new frames that continue it", nodes, links,
                    [("Models", ["model", "upsampler", "clip"]), ("Prompt", ["encode"]),
                     ("Clip", ["video", "extend"])])


WORKFLOWS = [text_to_video_lora, text_to_video_distilled, image_to_video, first_last_keyframes, video_to_video,
             ic_lora_control, text_to_video_one_node, long_video, extend_clip]
