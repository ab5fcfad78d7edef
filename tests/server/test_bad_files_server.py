"""Bad model files through the real ComfyUI server: the node that meets them fails with a message that names the
file and the problem, and no video is written (before: a black video, or success with the LoRA left out)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from support import e2e_workflows, tiny, tiny_lora, workflow_api
from support.comfy_server import ComfyServer, HostError

pytest_plugins = ["support.comfy_host"]

RUN_TIMEOUT = 180.0
NAN_CHECKPOINT = "ltxv097_bad_nan_weight.safetensors"
FORGED_CHECKPOINT = "ltxv097_bad_forged_layers.safetensors"
PICKLED_CHECKPOINT = "ltxv097_bad_pickle.safetensors"
PICKLED_UPSAMPLER = "ltxv097_bad_pickle_upsampler.safetensors"
RANK_MISMATCH_LORA = "ltxv097_bad_rank_mismatch.safetensors"
POISONED = "transformer_blocks.0.ff.net.2.weight"


def _checkpoint(path, *, poison: bool = False, layers: int | None = None) -> None:
    tcfg, vcfg = tiny.transformer_config(), tiny.vae_config()
    transformer = tiny.reference_transformer(tcfg)
    if poison:
        with torch.no_grad():
            transformer.get_parameter(POISONED)[0, 0] = float("nan")
    config = copy.deepcopy(tcfg) if layers is None else dict(tcfg, num_layers=layers)
    tiny.save_single_file(path, transformer=transformer, transformer_config_=config, vae=tiny.reference_vae(vcfg),
                          vae_config_=vcfg)


def _rank_mismatch_lora(path) -> None:
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(tiny.reference_transformer(tiny.transformer_config())))
    tensors, metadata = tiny_lora.lora_tensors(lora, "comfyui_up_down_alpha", 4.0)
    tensors["diffusion_model.transformer_blocks.1.attn1.to_k.lora_down.weight"] = torch.randn(8, 64)
    save_file(tensors, str(path), metadata=metadata)


@pytest.fixture(scope="module")
def host(comfy_server: ComfyServer):
    """The session server with the bad files added; they are removed afterwards, so that the other modules see the
    standard model lists."""
    added = [
        comfy_server.add_model("checkpoints", NAN_CHECKPOINT, lambda path: _checkpoint(path, poison=True)),
        comfy_server.add_model("checkpoints", FORGED_CHECKPOINT, lambda path: _checkpoint(path, layers=20000)),
        comfy_server.add_model("checkpoints", PICKLED_CHECKPOINT, lambda path: torch.save(
            {"model.diffusion_model.proj_out.weight": torch.zeros(2)}, path)),
        comfy_server.add_model("latent_upscale_models", PICKLED_UPSAMPLER,
                               lambda path: torch.save({"initial_conv.weight": torch.zeros(2)}, path)),
        comfy_server.add_model("loras", RANK_MISMATCH_LORA, _rank_mismatch_lora),
    ]
    yield comfy_server
    for path in added:
        path.unlink()


@pytest.fixture(scope="module")
def object_info(host):
    return host.object_info()


def _mp4s(server: ComfyServer) -> set:
    return set(server.output_dir.rglob("*.mp4")) if server.output_dir.exists() else set()


def _fails(server: ComfyServer, object_info: dict, *, checkpoint: str | None = None, lora: str | None = None) -> dict:
    """Run the LoRA workflow on the tiny models with a bad file swapped in; its execution error, no mp4 written."""
    models = dict(server.models, **({"checkpoint": checkpoint} if checkpoint else {}))
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_lora"), object_info,
                                       models, lora=lora)
    before = _mp4s(server)
    entry = server.wait(server.post_prompt(prompt), timeout=RUN_TIMEOUT)
    assert entry["status"]["status_str"] == "error", "the prompt should have failed"
    assert not e2e_workflows.saved_videos(entry) and _mp4s(server) == before, "a video was written"
    error = server.execution_error(entry)
    assert error is not None, json.dumps(entry["status"])[:2000]
    return error


def test_nan_weight_stops_the_sampler_at_the_first_step(host, object_info):
    error = _fails(host, object_info, checkpoint=NAN_CHECKPOINT)
    message = error["exception_message"]
    assert error["node_type"] == "LTX097Sampler", error
    assert "NaN or infinite at step 1 of" in message and "(pass 1 of 2" in message, message
    assert POISONED in message and NAN_CHECKPOINT in message and "LoRAs attached: none" in message, message


def test_forged_config_fails_the_loader_naming_the_field(host, object_info):
    error = _fails(host, object_info, checkpoint=FORGED_CHECKPOINT)
    message = error["exception_message"]
    assert error["node_type"] == "LTX097ModelLoader", error
    assert FORGED_CHECKPOINT in message and "num_layers=20000" in message and "2 transformer blocks" in message


@pytest.mark.parametrize("loader, widget, name", [("LTX097ModelLoader", "ckpt_name", PICKLED_CHECKPOINT),
                                                  ("LTX097UpsamplerLoader", "upscale_model_name", PICKLED_UPSAMPLER)])
def test_pickle_renamed_safetensors_is_refused_when_queued(host, object_info, loader, widget, name):
    prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_lora"), object_info,
                                       host.models)
    prompt = workflow_api.set_inputs(prompt, loader, **{widget: name})
    with pytest.raises(HostError) as refused:
        host.post_prompt(prompt)
    (node_id,) = workflow_api.nodes_of(prompt, loader)
    (error,) = refused.value.detail["node_errors"][node_id]["errors"]
    assert error["type"] == "custom_validation_failed", error
    assert f"'{name}' is a pickled PyTorch file" in error["details"] and "never loaded" in error["details"], error


def test_lora_with_ranks_that_disagree_fails_the_lora_node(host, object_info):
    error = _fails(host, object_info, lora=RANK_MISMATCH_LORA)
    message = error["exception_message"]
    assert error["node_type"] == "LTX097LoraLoader", error
    assert f"'{RANK_MISMATCH_LORA}' is damaged" in message, message
    assert "transformer_blocks.1.attn1.to_k.lora_up.weight is 64×4 but" in message and "is 8×64" in message, message
