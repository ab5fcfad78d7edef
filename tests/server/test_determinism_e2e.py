"""The same prompt and seed give the same video, whatever the server ran before (issue 8, item 5).

Through the real ComfyUI server: a small distilled text-to-video prompt runs once, then again after each of a row
of unusual prompts: a video condition refused at run time (start frame 12), a 100,000-character prompt, a run
interrupted mid-sampling, a run interrupted mid-decode, a file that is not a LoRA, another size and seed. Every
time the decoded frames (fingerprinted bit for bit by the test-only `LTX097TestImageDigest` node) and the saved
mp4 file must be exactly the first run's. (What used to differ was the mp4 alone, and only now and then: see
`nodes/video.py`, `X264_OPTIONS`.)
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch

from support import e2e_workflows, workflow_api
from support.comfy_server import ComfyServer
from support.server_events import ServerEvents

pytest_plugins = ["support.comfy_host"]

RUN_TIMEOUT = 180.0
NOT_A_LORA = "ltxv097_determinism_not_a_lora.safetensors"
LONG_PROMPT_CHARS = 100_000


@pytest.fixture(scope="module")
def host(comfy_server: ComfyServer):
    e2e_workflows.write_input_media(comfy_server.workdir / "input")

    def not_a_lora(path: Path) -> None:
        from safetensors.torch import save_file

        save_file({"model.layers.0.weight": torch.randn(8, 8)}, str(path))

    comfy_server.add_model("loras", NOT_A_LORA, not_a_lora)
    return comfy_server


@pytest.fixture(scope="module")
def object_info(host):
    return host.object_info()


def tiny(name: str, object_info: dict, host: ComfyServer, **kwargs) -> dict:
    return e2e_workflows.tiny_prompt(e2e_workflows.load_workflow(name), object_info, host.models, **kwargs)


def with_digest(prompt: dict) -> tuple[dict, str]:
    """The prompt with a digest node on the decode node's frames; returns (prompt, digest node id)."""
    (decode,) = workflow_api.nodes_of(prompt, "LTX097Decode")
    return workflow_api.add_node(prompt, "LTX097TestImageDigest", {"images": [decode, 0]})


def run(server: ComfyServer, prompt: dict) -> dict:
    return server.wait(server.post_prompt(prompt), timeout=RUN_TIMEOUT, raise_on_error=True)


def failed(server: ComfyServer, prompt: dict, node_type: str) -> None:
    entry = server.wait(server.post_prompt(prompt), timeout=RUN_TIMEOUT)
    error = server.execution_error(entry)
    assert error is not None and error["node_type"] == node_type, entry["status"]


def interrupted_at(server: ComfyServer, prompt: dict, node_id: str, *, steps: int = 0) -> None:
    """Queue `prompt`, interrupt it once `node_id` runs (after `steps` progress steps of it), check it stopped."""
    watch = ServerEvents(server)
    try:
        prompt_id = server.post_prompt(prompt)
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (watch.executing(prompt_id, node_id) and len(watch.progress(prompt_id, node_id)) >= steps):
            assert time.monotonic() < deadline, f"node {node_id} did not start"
            assert server.history(prompt_id) is None, f"the prompt finished before node {node_id} was interrupted"
            time.sleep(0.02)
        server.interrupt()
        entry = server.wait(prompt_id, timeout=60)
    finally:
        watch.close()
    stops = [data["node_id"] for kind, data in entry["status"]["messages"] if kind == "execution_interrupted"]
    assert stops == [node_id], entry["status"]


def test_same_prompt_and_seed_give_the_same_video_whatever_ran_before(host, object_info):
    name = "ltxv097_text_to_video_distilled"
    base, digest = with_digest(tiny(name, object_info, host))
    (sampler,) = workflow_api.nodes_of(base, "LTX097Sampler")
    (decode,) = workflow_api.nodes_of(base, "LTX097Decode")
    (encode,) = workflow_api.nodes_of(base, "LTX097TextEncode")
    (save,) = workflow_api.nodes_of(base, "LTX097SaveVideo")

    def result(entry: dict) -> tuple[str, bytes]:
        cached = next((data["nodes"] for kind, data in entry["status"]["messages"] if kind == "execution_cached"),
                      [])
        assert sampler not in cached and digest not in cached, "the prompt was answered from the cache"
        (video,) = e2e_workflows.saved_videos(entry)
        return entry["outputs"][digest]["text"][0], host.view(video["filename"], video["subfolder"])

    expected = result(run(host, base))

    refused_condition = tiny("ltxv097_video_to_video", object_info, host)
    refused_condition = workflow_api.set_inputs(refused_condition, "LTX097VideoCondition", start_frame=12)
    long_prompt = copy.deepcopy(base)
    long_prompt[encode]["inputs"]["prompt"] = "a fox in the snow, " * (LONG_PROMPT_CHARS // 20)
    long_sampling = workflow_api.set_inputs(base, "LTX097Sampler", width=384, height=384, num_frames=97, seed=5)
    long_decode = workflow_api.set_inputs(long_sampling, "LTX097Decode", chunk_frames=1)
    not_a_lora = tiny("ltxv097_text_to_video_lora", object_info, host, lora=NOT_A_LORA)
    other_size = workflow_api.set_inputs(base, "LTX097Sampler", width=128, height=96, num_frames=25, seed=9)

    before = {
        "a video condition refused at start frame 12": lambda: failed(host, refused_condition,
                                                                      "LTX097VideoCondition"),
        "a 100,000-character prompt": lambda: run(host, long_prompt),
        "a run interrupted while sampling": lambda: interrupted_at(host, long_sampling, sampler, steps=1),
        "a run interrupted while decoding": lambda: interrupted_at(host, long_decode, decode),
        "a file that is not a LoRA": lambda: failed(host, not_a_lora, "LTX097LoraLoader"),
        "another size and seed": lambda: run(host, other_size),
    }
    differences = []
    for label, other in before.items():
        other()
        digest_text, mp4 = result(run(host, base))
        if digest_text != expected[0]:
            differences.append(f"after {label}: other frames ({digest_text} != {expected[0]})")
        elif mp4 != expected[1]:
            differences.append(f"after {label}: the same frames, another mp4 file")
    assert not differences, "\n".join(differences)
