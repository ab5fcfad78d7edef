"""What the end-to-end and browser tests share about the shipped workflows: the files, the inputs they load, how
they are pointed at tiny models on a test server, and reading the videos they write.

The shipped files name the official 13B files and real sizes; on the session server (`comfy_host`) a workflow
runs with the tiny random models instead (`tiny_prompt`):

- the checkpoint, upsampler and LoRA names point at tiny files; core `CLIPLoader` becomes the test-only
  `LTX097TestTinyT5Loader` (core's loader only recognises full-size T5-XXL files);
- sizes shrink to something a CPU renders in a second (the real 768×512×97 takes minutes on a tiny model);
- the recipes' STG blocks (up to 39 of the 13B model's 48) are moved to block 1 of the 2-block tiny model with a
  `LTX097GuidanceSettings` node on every sampler, as a user would for another model.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import tomllib

from support import workflow_api

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / "workflows"
PACK_ID = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["name"]
"""The pack's registry id, which the workflows' nodes carry as `properties.cnr_id`."""

SAMPLER_SIZE = {"width": 96, "height": 64, "num_frames": 17}
"""What the Sampler workflows render at on the test server (multiples of 32 and 8k+1 need no crop; the crop
path has its own node tests)."""
TEXT_TO_VIDEO_SIZE = {"resolution": "480p", "number_of_frames": 9}
"""The one-node text-to-video's smallest setting (848×480 at 16:9, 9 frames)."""
TINY_GUIDANCE = {"apply_to": "both passes", "cfg_scale": "", "stg_scale": "", "rescaling_scale": "",
                 "guidance_timesteps": "", "skip_block_list": "1", "cfg_star_rescale": "recipe default",
                 "stg_mode": "recipe default", "image_cond_noise_scale": -1.0, "decode_timestep": -1.0,
                 "decode_noise_scale": -1.0, "adain_factor": -1.0, "save_memory": False}
"""STG on block 1 (the tiny transformer has blocks 0 and 1); everything else as the recipe has it."""
TINY_STEPS = 4
"""Steps per pass of the tiny runs: a pass's σ range and guidance schedule are exercised in a few steps."""
SAMPLING_NODES = ("LTX097Sampler", "LTX097TextToVideo", "LTX097ExtendVideo")
LONG_VIDEO_WINDOWS = {"window_frames": 9, "overlap_frames": 8}
"""Windows of 9 frames each adding 8: a few dozen frames exercise several windows in seconds."""
LONG_VIDEO_FRAMES = 25
"""3 windows of the tiny long video (one per prompt of the shipped story)."""
EXTEND_NEW_FRAMES = 8
INPUT_MEDIA_SIZE = (96, 64)
INPUT_VIDEO_FRAMES = 17


def workflow_paths() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.json"))


def load_workflow(name_or_path) -> dict:
    path = Path(name_or_path)
    if not path.is_absolute() and path.parent == Path("."):
        path = WORKFLOWS_DIR / (path.name if path.suffix == ".json" else f"{path.name}.json")
    return json.loads(path.read_text())


def ui_nodes(workflow: dict, node_type: str) -> list[dict]:
    return [node for node in workflow["nodes"] if node["type"] == node_type]


def input_media(workflows: list[dict] | None = None) -> dict[str, str]:
    """{file name: "image" | "video"} of every file the workflows' LoadImage / LoadVideo nodes name."""
    media = {}
    for workflow in workflows or [load_workflow(p) for p in workflow_paths()]:
        for node in ui_nodes(workflow, "LoadImage"):
            media[node["widgets_values"][0]] = "image"
        for node in ui_nodes(workflow, "LoadVideo"):
            media[node["widgets_values"][0]] = "video"
    return media


def gradient_frames(count: int, size: tuple[int, int] = INPUT_MEDIA_SIZE, seed: int = 0) -> np.ndarray:
    """`count` RGB frames (uint8 [count, H, W, 3]) of a moving colour gradient with a square in it."""
    width, height = size
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, size=3)
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        frame = np.stack([(base[c] + 60 * np.sin((x + 3 * t) / 9 + c) + 40 * np.cos(y / 7 - c)) for c in range(3)],
                         axis=-1)
        left = (4 + 3 * t) % max(1, width - 16)
        frame[20:36, left:left + 16] = [250, 250, 30]
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


def write_image(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    Image.fromarray(gradient_frames(1, seed=seed)[0]).save(path)
    return path


def write_video(path: Path, frames: int = INPUT_VIDEO_FRAMES, fps: int = 25, seed: int = 0) -> Path:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = INPUT_MEDIA_SIZE
        stream.pix_fmt = "yuv420p"
        for pixels in gradient_frames(frames, seed=seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_input_media(input_dir: Path) -> dict[str, Path]:
    """Small stand-ins for every image and video the workflows load, written into a server's input folder."""
    input_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for number, (name, kind) in enumerate(sorted(input_media().items())):
        path = input_dir / name
        written[name] = write_image(path, seed=number) if kind == "image" else write_video(path, seed=number)
    return written


def tiny_prompt(workflow: dict, object_info: dict, models: dict, *, lora: str | None = None,
                lora_strength: float | None = None) -> dict:
    """The workflow as an API prompt for the test server: tiny models, small sizes, STG on a tiny block."""
    prompt = workflow_api.to_api(workflow, object_info)
    present = {node["class_type"] for node in prompt.values()}
    if "LTX097ModelLoader" in present:
        prompt = workflow_api.set_inputs(prompt, "LTX097ModelLoader", ckpt_name=models["checkpoint"])
    if "LTX097UpsamplerLoader" in present:
        prompt = workflow_api.set_inputs(prompt, "LTX097UpsamplerLoader", upscale_model_name=models["upsampler"])
    if "CLIPLoader" in present:
        prompt = workflow_api.replace_node(prompt, "CLIPLoader", "LTX097TestTinyT5Loader",
                                           {"t5_name": models["t5"]})
    if "LTX097Sampler" in present:
        prompt = workflow_api.set_inputs(prompt, "LTX097Sampler", **SAMPLER_SIZE)
    if "LTX097TextToVideo" in present:
        prompt = workflow_api.set_inputs(prompt, "LTX097TextToVideo", **TEXT_TO_VIDEO_SIZE)
    if "LTX097LongVideoSettings" in present:
        prompt = workflow_api.set_inputs(prompt, "LTX097LongVideoSettings", **LONG_VIDEO_WINDOWS)
        if "LTX097TextToVideo" in present:
            prompt = workflow_api.set_inputs(prompt, "LTX097TextToVideo", number_of_frames=LONG_VIDEO_FRAMES)
    if "LTX097ExtendVideo" in present:
        prompt = workflow_api.set_inputs(prompt, "LTX097ExtendVideo", new_frames=EXTEND_NEW_FRAMES)
    if "LTX097LoraLoader" in present:
        changes = {"lora_name": lora if lora is not None else "none"}
        if lora_strength is not None:
            changes["strength"] = lora_strength
        prompt = workflow_api.set_inputs(prompt, "LTX097LoraLoader", **changes)
    samplers = [node_id for node_id, node in prompt.items() if node["class_type"] in SAMPLING_NODES]
    for node_id in samplers:
        for name in ("steps", "number_of_steps"):
            if isinstance(prompt[node_id]["inputs"].get(name), int):
                prompt[node_id]["inputs"][name] = TINY_STEPS
    if samplers:
        prompt, guidance = workflow_api.add_node(prompt, "LTX097GuidanceSettings", TINY_GUIDANCE)
        for node_id in samplers:
            if "guidance" in prompt[node_id]["inputs"]:
                raise AssertionError("a shipped workflow has its own guidance settings: chain the tiny ones")
            prompt[node_id]["inputs"]["guidance"] = [guidance, 0]
    return prompt


# ----------------------------------------------------------------------------------------------------------------
# Outputs


def saved_videos(entry: dict) -> list[dict]:
    """The mp4 files a finished prompt reported (`{"filename", "subfolder", "type", "node"}`)."""
    videos = []
    for node_id, output in entry.get("outputs", {}).items():
        for item in output.get("images", []) or []:
            if item.get("filename", "").endswith(".mp4"):
                videos.append({**item, "node": node_id})
    return videos


def read_video(path: Path) -> tuple[np.ndarray, Fraction, dict]:
    """(frames uint8 [F, H, W, 3], frame rate, stream facts) of a video file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                 "width": stream.codec_context.width, "height": stream.codec_context.height}
        rate = stream.average_rate or stream.guessed_rate
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    return frames, Fraction(rate), facts
