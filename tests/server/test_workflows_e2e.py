"""Every shipped workflow, run end to end through the real ComfyUI 0.3.75 server's HTTP API.

Each UI-format file in `workflows/` is converted to an API prompt with the server's `/object_info`
(`workflow_api.to_api`), pointed at the tiny random models (`e2e_workflows.tiny_prompt`), queued with
`POST /prompt`, and its mp4 is read back and checked: frame count, size, frame rate, H.264 yuv420p, and frames
that are not all the same. The LoRA workflow runs with a tiny LoRA in every file format; bad inputs get HTTP 400 or
an execution error whose message names the problem; `/interrupt` stops a running prompt, and the next prompts run
and give the same video as before it.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from support import e2e_workflows, tiny, tiny_lora, workflow_api
from support.comfy_server import ComfyServer, HostError
from support.server_events import ServerEvents

pytest_plugins = ["support.comfy_host"]

WORKFLOW_NAMES = [path.stem for path in e2e_workflows.workflow_paths()]
EXPECTED_WORKFLOWS = {"ltxv097_text_to_video_lora", "ltxv097_text_to_video_distilled", "ltxv097_image_to_video",
                      "ltxv097_first_last_keyframes", "ltxv097_video_to_video", "ltxv097_text_to_video_one_node",
                      "ltxv097_long_video", "ltxv097_extend_clip", "ltxv097_ic_lora_control"}
OFFICIAL_FILES = {"ltxv-13b-0.9.7-dev.safetensors", "ltxv-13b-0.9.7-distilled.safetensors",
                  "ltxv-spatial-upscaler-0.9.7.safetensors", "t5xxl_fp16.safetensors"}
MODEL_URLS = ("https://huggingface.co/Lightricks/LTX-Video/resolve/main/",
              "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/")
LOADER_WIDGETS = {"LTX097ModelLoader": "ckpt_name", "LTX097UpsamplerLoader": "upscale_model_name",
                  "CLIPLoader": "clip_name"}
RUN_TIMEOUT = 180.0
LORA_RANK = 4
E2E_LORA_FORMATS = ("diffusers_peft_metadata", "kohya", "comfyui_trainer")
"""A PEFT file with its alpha in the metadata, a kohya file with `.alpha` tensors, an alpha-free trainer file: each
way the scale is found. Every format's weights are compared one by one in tests/host/test_lora.py; here they run
through the real server's LoRA folder and loader node."""
LORA_EXAMPLE = "my_ltxv_13b_0.9.7_lora.safetensors"
"""The LoRA workflow's placeholder name for the user's LoRA."""
IC_LORA = "ltxv-097-ic-lora-canny-control-comfyui.safetensors"
"""The IC-LoRA the control workflow loads (the official canny one)."""
LORA_FILES = {LORA_EXAMPLE, IC_LORA}
NOT_A_LORA = "ltxv097_e2e_not_a_lora.safetensors"


# ------------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def host(comfy_server: ComfyServer):
    """The session server with the workflows' input media and the tiny LoRAs (one file per format) added."""
    e2e_workflows.write_input_media(comfy_server.workdir / "input")
    transformer = tiny.reference_transformer(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(transformer), rank=LORA_RANK, seed=7, magnitude=2.0)
    loras = {}
    for fmt in E2E_LORA_FORMATS:
        name = f"ltxv097_e2e_lora_{fmt}.safetensors"
        comfy_server.add_model("loras", name, lambda path, fmt=fmt: tiny_lora.write_lora(path, lora, fmt,
                                                                                        alpha=float(LORA_RANK)))
        loras[fmt] = name

    def not_a_lora(path: Path) -> None:
        from safetensors.torch import save_file

        save_file({"model.layers.0.weight": torch.randn(8, 8), "model.layers.0.bias": torch.zeros(8)}, str(path))

    comfy_server.add_model("loras", NOT_A_LORA, not_a_lora)
    comfy_server.loras = loras
    return comfy_server


@pytest.fixture(scope="module")
def object_info(host):
    return host.object_info()


def run(server: ComfyServer, prompt: dict, timeout: float = RUN_TIMEOUT) -> dict:
    """Queue a prompt and wait for it; a failure raises with the server's error message."""
    return server.wait(server.post_prompt(prompt), timeout=timeout, raise_on_error=True)


def video_of(server: ComfyServer, entry: dict) -> tuple[np.ndarray, Fraction, dict]:
    (video,) = e2e_workflows.saved_videos(entry)
    assert video["type"] == "output"
    data = server.view(video["filename"], video["subfolder"])  # the file as the frontend fetches it
    path = server.output_dir / video["subfolder"] / video["filename"]
    assert path.is_file() and path.read_bytes() == data
    return e2e_workflows.read_video(path)


def check_video(frames: np.ndarray, rate: Fraction, facts: dict, *, count: int, width: int, height: int,
                fps: float) -> None:
    assert frames.shape == (count, height, width, 3), f"video {frames.shape}, expected {(count, height, width, 3)}"
    assert abs(float(rate) - fps) < 1e-3, f"frame rate {rate}, expected {fps}"
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p", facts
    spread = np.abs(frames.astype(np.int16) - frames[:1].astype(np.int16)).max(axis=(1, 2, 3))
    assert spread.max() > 8, "every frame of the video is the same"
    assert frames.std() > 2, "the video is a flat colour"


# ------------------------------------------------------------------------------------------------------------------
# The files themselves


def test_the_six_workflows_are_shipped():
    assert set(WORKFLOW_NAMES) == EXPECTED_WORKFLOWS


def test_readme_documents_every_node_and_workflow(object_info):
    readme = (e2e_workflows.REPO_ROOT / "README.md").read_text()
    nodes = readme.split("## Nodes", 1)[1].split("\n## ", 1)[0]
    workflows = readme.split("## Workflows", 1)[1].split("\n## ", 1)[0]
    ours = [name for name, info in object_info.items() if info.get("python_module") == "custom_nodes.ltxv097"]
    assert ours and not [name for name in ours if f"| `{name}`" not in nodes]
    assert not [name for name in WORKFLOW_NAMES if f"`{name}.json`" not in workflows]


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_file_format(name):
    """UI format 0.4 as the frontend saves it: consistent ids, links that match the nodes' sockets, download
    links for every model file, and a note that names every file and its folder."""
    workflow = e2e_workflows.load_workflow(name)
    assert workflow["version"] == 0.4
    assert {"last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra"} <= set(workflow)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]) and max(nodes) <= workflow["last_node_id"]
    assert max(link[0] for link in workflow["links"]) <= workflow["last_link_id"]
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert link_id in nodes[origin]["outputs"][origin_slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert nodes[target]["inputs"][target_slot]["type"] in (kind, "*") or kind == "*"
    for node in workflow["nodes"]:
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties"):
            assert key in node, f"node {node['id']} lacks {key}"
        assert node["mode"] == 0
    notes = " ".join(str(n["widgets_values"][0]) for n in workflow["nodes"] if n["type"] in ("Note", "MarkdownNote"))
    for node in workflow["nodes"]:
        if node["type"] not in LOADER_WIDGETS:
            continue
        file_name = node["widgets_values"][0]
        assert file_name in OFFICIAL_FILES, f"{node['type']} names {file_name}, not an official release file"
        (model,) = node["properties"]["models"]
        assert model["name"] == file_name
        assert model["url"].startswith(MODEL_URLS) and model["url"].endswith("/" + file_name)
        assert f"models/{model['directory']}/" in notes and file_name in notes
        assert model["directory"] in ("checkpoints", "latent_upscale_models", "text_encoders")


def widget_problems(prompt: dict, object_info: dict, allowed_missing: set[str]) -> list[str]:
    """Every widget value checked against its `/object_info` definition (type, min/max, combo options); combo
    values in `allowed_missing` (model and media files the test server does not have) pass."""
    problems = []
    for node in prompt.values():
        definition = object_info[node["class_type"]]
        specs = {**definition["input"].get("required", {}), **definition["input"].get("optional", {})}
        for input_name, value in node["inputs"].items():
            spec = specs[input_name]
            kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            where = f"{node['class_type']}.{input_name}={value!r}"
            if isinstance(value, list):  # a link
                continue
            choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
            if choices is not None:
                if value not in choices and value not in allowed_missing:
                    problems.append(f"{where} is not one of {choices[:10]}")
            elif kind == "INT" and not (isinstance(value, int) and not isinstance(value, bool)):
                problems.append(f"{where} is not an integer")
            elif kind == "FLOAT" and not isinstance(value, (int, float)):
                problems.append(f"{where} is not a number")
            elif kind == "BOOLEAN" and not isinstance(value, bool):
                problems.append(f"{where} is not true/false")
            elif kind == "STRING" and not isinstance(value, str):
                problems.append(f"{where} is not text")
            if kind in ("INT", "FLOAT") and not options.get("min", value) <= value <= options.get("max", value):
                problems.append(f"{where} is outside {options.get('min')}..{options.get('max')}")
    return problems


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_is_valid_for_the_server(host, object_info, name):
    """Unchanged, every widget value fits the server's node definitions, except the model and media files, which
    the test server does not have; validation refuses nothing else (ComfyUI checks core's V1 combos: the T5 and
    the media; our loaders check their own files)."""
    workflow = e2e_workflows.load_workflow(name)
    prompt = workflow_api.to_api(workflow, object_info)
    media = set(e2e_workflows.input_media([workflow]))
    assert not widget_problems(prompt, object_info, OFFICIAL_FILES | media | LORA_FILES)
    try:
        host.post_prompt(prompt)
    except HostError as refused:
        errors = refused.detail["node_errors"]
    else:
        raise AssertionError("the server ran a workflow whose model files it does not have")
    assert errors
    for node_id, node_errors in errors.items():
        for error in node_errors["errors"]:
            if error["type"] == "custom_validation_failed":  # our loaders: the message names the missing file
                named = [f for f in OFFICIAL_FILES | LORA_FILES if f"'{f}' was not found" in error["details"]]
                assert named, f"{prompt[node_id]['class_type']}: {error}"
                continue
            value = error["extra_info"].get("received_value")
            assert error["type"] == "value_not_in_list" and (value in OFFICIAL_FILES or value in media), \
                f"{prompt[node_id]['class_type']}: {error}"


# ------------------------------------------------------------------------------------------------------------------
# Running every workflow


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_renders_a_video(host, object_info, name):
    workflow = e2e_workflows.load_workflow(name)
    prompt = e2e_workflows.tiny_prompt(workflow, object_info, host.models)
    entry = run(host, prompt)
    frames, rate, facts = video_of(host, entry)
    if workflow_api.nodes_of(prompt, "LTX097TextToVideo"):
        (node_id,) = workflow_api.nodes_of(prompt, "LTX097TextToVideo")
        inputs = prompt[node_id]["inputs"]
        width, height = {"16:9": (848, 480), "1:1": (480, 480), "9:16": (480, 848)}[inputs["aspect_ratio"]]
        check_video(frames, rate, facts, count=inputs["number_of_frames"], width=width, height=height,
                    fps=inputs["frame_rate"])
        (preview,) = workflow_api.nodes_of(prompt, "PreviewAny")  # the seed output, shown as text
        assert entry["outputs"][preview]["text"] == [str(inputs["seed"])]
    elif workflow_api.nodes_of(prompt, "LTX097ExtendVideo"):
        (node_id,) = workflow_api.nodes_of(prompt, "LTX097ExtendVideo")
        inputs = prompt[node_id]["inputs"]
        clip, _, _ = e2e_workflows.read_video(host.workdir / "input" / prompt[inputs["video"][0]]["inputs"]["file"])
        width, height = e2e_workflows.INPUT_MEDIA_SIZE
        check_video(frames, rate, facts, count=e2e_workflows.INPUT_VIDEO_FRAMES + inputs["new_frames"], width=width,
                    height=height, fps=25)
        kept = frames[:len(clip)].astype(np.int16) - clip.astype(np.int16)
        assert np.abs(kept).mean() < 3  # the clip's own frames, through one more H.264 encode
    else:
        (node_id,) = workflow_api.nodes_of(prompt, "LTX097Sampler")
        inputs = prompt[node_id]["inputs"]
        check_video(frames, rate, facts, count=inputs["num_frames"], width=inputs["width"], height=inputs["height"],
                    fps=inputs["frame_rate"])


@pytest.mark.parametrize("name, loader, widget", [("ltxv097_image_to_video", "LoadImage", "image"),
                                                  ("ltxv097_first_last_keyframes", "LoadImage", "image"),
                                                  ("ltxv097_video_to_video", "LoadVideo", "file")])
def test_conditioned_workflows_use_their_media(host, object_info, name, loader, widget):
    """Other input media (same prompt, seed and model) give another video: the conditions reach the sampler.
    (The tiny random VAE does not reproduce its input, so the frames are not compared with the media.)"""
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow(name), object_info, host.models)
    first, _, _ = video_of(host, run(host, prompt))
    other_name = f"ltxv097_e2e_other_{widget}" + (".png" if widget == "image" else ".mp4")
    other_path = host.workdir / "input" / other_name
    if not other_path.exists():
        (e2e_workflows.write_image if widget == "image" else e2e_workflows.write_video)(other_path, seed=99)
    loader_id = workflow_api.nodes_of(prompt, loader)[0]
    prompt[loader_id]["inputs"][widget] = other_name
    second, _, _ = video_of(host, run(host, prompt))
    assert np.abs(first.astype(np.int16) - second.astype(np.int16)).mean() > 1.0


def test_ic_lora_workflow_guide_reaches_the_sampler(host, object_info):
    """The control workflow's guide moves the video: with strength 0 (no guide) it comes out otherwise. (The
    stand-in videos are smooth gradients, whose Canny edges are empty, so other media would not show it.)"""
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_ic_lora_control"), object_info,
                                       host.models)
    guided, _, _ = video_of(host, run(host, prompt))
    (guide_id,) = workflow_api.nodes_of(prompt, "LTX097Guide")
    prompt[guide_id]["inputs"]["strength"] = 0.0
    unguided, _, _ = video_of(host, run(host, prompt))
    assert np.abs(guided.astype(np.int16) - unguided.astype(np.int16)).mean() > 1.0


def test_lora_workflow_with_lora_formats(host, object_info):
    """The same tiny LoRA written in each way of giving its scale gives the same video, and it differs from the
    video without a LoRA."""
    workflow = e2e_workflows.load_workflow("ltxv097_text_to_video_lora")
    base, _, _ = video_of(host, run(host, e2e_workflows.tiny_prompt(workflow, object_info, host.models)))
    videos = {}
    for fmt in E2E_LORA_FORMATS:
        prompt = e2e_workflows.tiny_prompt(workflow, object_info, host.models, lora=host.loras[fmt])
        videos[fmt], _, _ = video_of(host, run(host, prompt))
    for fmt, frames in videos.items():
        assert frames.shape == base.shape
        change = np.abs(frames.astype(np.int16) - base.astype(np.int16)).mean()
        assert change > 2.0, f"the {fmt} LoRA did not change the video (mean change {change:.2f})"
    reference = videos[E2E_LORA_FORMATS[0]].astype(np.int16)
    for fmt, frames in videos.items():
        assert np.abs(frames.astype(np.int16) - reference).max() <= 2, f"{fmt} differs from {E2E_LORA_FORMATS[0]}"
    # strength 0 turns the LoRA off: the video without a LoRA again
    off = e2e_workflows.tiny_prompt(workflow, object_info, host.models, lora=host.loras["kohya"], lora_strength=0.0)
    frames, _, _ = video_of(host, run(host, off))
    assert np.abs(frames.astype(np.int16) - base.astype(np.int16)).max() <= 2


# ------------------------------------------------------------------------------------------------------------------
# Bad inputs


def refused(server: ComfyServer, prompt: dict) -> dict:
    with pytest.raises(HostError) as error:
        server.post_prompt(prompt)
    return error.value.detail


def failed(server: ComfyServer, prompt: dict) -> dict:
    entry = server.wait(server.post_prompt(prompt), timeout=RUN_TIMEOUT)
    assert entry["status"]["status_str"] == "error", "the prompt should have failed"
    error = server.execution_error(entry)
    assert error is not None, entry["status"]
    return error


def test_width_out_of_range_is_refused(host, object_info):
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_distilled"), object_info,
                                       host.models)
    prompt = workflow_api.set_inputs(prompt, "LTX097Sampler", width=16)
    detail = refused(host, prompt)
    (sampler,) = workflow_api.nodes_of(prompt, "LTX097Sampler")
    (error,) = detail["node_errors"][sampler]["errors"]
    assert error["type"] == "value_smaller_than_min" and error["extra_info"]["input_name"] == "width"


def test_frame_count_out_of_range_is_refused(host, object_info):
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_one_node"), object_info,
                                       host.models)
    prompt = workflow_api.set_inputs(prompt, "LTX097TextToVideo", number_of_frames=3000)
    detail = refused(host, prompt)
    (node,) = workflow_api.nodes_of(prompt, "LTX097TextToVideo")
    (error,) = detail["node_errors"][node]["errors"]
    assert error["type"] == "value_bigger_than_max" and error["extra_info"]["input_name"] == "number_of_frames"


def test_missing_model_file_is_refused_naming_its_folder(host, object_info):
    """Our loaders validate file names at queue time (ComfyUI 0.3.75 checks no V3 combo values itself)."""
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_distilled"), object_info,
                                       host.models)
    prompt = workflow_api.set_inputs(prompt, "LTX097ModelLoader", ckpt_name="ltxv-13b-0.9.7-dev.safetensors")
    detail = refused(host, prompt)
    (loader,) = workflow_api.nodes_of(prompt, "LTX097ModelLoader")
    message = str(detail["node_errors"][loader]["errors"])
    assert "ltxv-13b-0.9.7-dev.safetensors" in message and "models/checkpoints" in message, detail


def test_missing_text_encoder_is_refused(host, object_info):
    """Core's CLIPLoader (a V1 node) is validated by ComfyUI: HTTP 400 naming the file."""
    prompt = workflow_api.to_api(e2e_workflows.load_workflow("ltxv097_text_to_video_distilled"), object_info)
    detail = refused(host, prompt)
    (loader,) = workflow_api.nodes_of(prompt, "CLIPLoader")
    (error,) = detail["node_errors"][loader]["errors"]
    assert error["type"] == "value_not_in_list" and error["extra_info"]["received_value"] == "t5xxl_fp16.safetensors"


def test_missing_upsampler_names_the_file_and_folder(host, object_info):
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_distilled"), object_info,
                                       host.models)
    prompt = workflow_api.remove_input(prompt, "LTX097Sampler", "upsampler")
    error = failed(host, prompt)
    assert error["node_type"] == "LTX097Sampler"
    message = error["exception_message"]
    assert "upsampler" in message and "ltxv-spatial-upscaler-0.9.7.safetensors" in message
    assert "models/latent_upscale_models" in message


def test_file_that_is_not_a_lora_is_named(host, object_info):
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_lora"), object_info,
                                       host.models, lora=NOT_A_LORA)
    error = failed(host, prompt)
    assert error["node_type"] == "LTX097LoraLoader"
    assert NOT_A_LORA in error["exception_message"] and "LoRA" in error["exception_message"], error


def test_checkpoint_that_is_not_ltx_video_is_named(host, object_info):
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_distilled"), object_info,
                                       host.models)
    prompt = workflow_api.set_inputs(prompt, "LTX097ModelLoader", ckpt_name=host.models["not_ltx"])
    error = failed(host, prompt)
    assert error["node_type"] == "LTX097ModelLoader"
    assert "LTX-Video" in error["exception_message"], error


def test_video_too_short_for_a_video_condition(host, object_info):
    short = "ltxv097_e2e_short_clip.mp4"
    e2e_workflows.write_video(host.workdir / "input" / short, frames=5)
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_video_to_video"), object_info,
                                       host.models)
    prompt = workflow_api.set_inputs(prompt, "LoadVideo", file=short)
    error = failed(host, prompt)
    assert error["node_type"] == "LTX097VideoCondition"
    assert "5 frame" in error["exception_message"] and "at least 9" in error["exception_message"], error


# ------------------------------------------------------------------------------------------------------------------
# Interrupting


def test_interrupt_stops_a_running_prompt_and_leaves_the_model_clean(host, object_info):
    workflow = e2e_workflows.load_workflow("ltxv097_text_to_video_lora")
    small = e2e_workflows.tiny_prompt(workflow, object_info, host.models)
    (sampler,) = workflow_api.nodes_of(small, "LTX097Sampler")
    before, _, _ = video_of(host, run(host, small))

    # a long run with a LoRA patched onto the model: bigger and with 200 steps per pass
    long = e2e_workflows.tiny_prompt(workflow, object_info, host.models, lora=host.loras["comfyui_trainer"])
    long = workflow_api.set_inputs(long, "LTX097Sampler", width=512, height=512, num_frames=97, steps=200, seed=5)
    watch = ServerEvents(host)
    try:
        prompt_id = host.post_prompt(long)
        deadline = time.monotonic() + RUN_TIMEOUT
        while len(watch.progress(prompt_id, sampler)) < 3:
            assert time.monotonic() < deadline, "the sampler reported no progress"
            assert host.history(prompt_id) is None, "the long prompt finished before it could be interrupted"
            time.sleep(0.05)
        steps = watch.progress(prompt_id, sampler)[-1]
        assert steps["max"] > steps["value"] >= 3
        interrupted_at = time.monotonic()
        host.interrupt()
        entry = host.wait(prompt_id, timeout=60)
        stopped_after = time.monotonic() - interrupted_at
    finally:
        watch.close()
    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [name for name, _ in entry["status"]["messages"]]
    assert not e2e_workflows.saved_videos(entry)
    assert stopped_after < 20, f"the sampler took {stopped_after:.1f} s to stop"

    # the next prompt runs; then the first one again gives the same video (no LoRA patch left on the model)
    other = workflow_api.set_inputs(small, "LTX097Sampler", seed=small[sampler]["inputs"]["seed"] + 1)
    run(host, other)
    entry = run(host, small)
    cached = next((data["nodes"] for name, data in entry["status"]["messages"] if name == "execution_cached"), [])
    assert sampler not in cached, "the sampler did not run again"
    after, _, _ = video_of(host, entry)
    assert np.array_equal(before, after)
