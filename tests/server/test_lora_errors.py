"""The LoRA nodes' sentences in-process on the real host modules (CPU): files that adapt nothing or do not fit, paths
outside the loras folders, local paths when allowed, unknown sources, LoRA lists; the node schemas, and the nodes in
API prompts on the real server."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import save_file

from support import tiny_lora
from support.lora_kit import ALPHA, RANK, TOLERANCE, reference, run, with_lora

pytest_plugins = ["support.comfy_host", "support.lora_kit"]


def test_unused_keys_are_warned_about(nodes, base, env, lora, caplog):
    tensors, metadata = tiny_lora.lora_tensors(lora, "comfyui_up_down_alpha", ALPHA)
    tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(2, 8)
    save_file(tensors, str(env["loras"] / "with_te.safetensors"), metadata=metadata)
    with caplog.at_level(logging.WARNING):
        with_lora(nodes, base, "with_te.safetensors", 1.0)
    assert "1 keys adapt nothing in the LTX-Video transformer and are ignored: " \
           "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight" in caplog.text


def test_a_lora_for_another_model_is_an_error(nodes, base, env):
    save_file({"double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 8),
               "double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(8, 2)},
              str(env["loras"] / "flux.safetensors"))
    with pytest.raises(ValueError, match=r"'flux\.safetensors' has no LoRA weights for the LTX-Video transformer: "
                                         r"none of its 2 keys .* \(first keys: 'double_blocks"):
        with_lora(nodes, base, "flux.safetensors", 1.0)
    big = tiny_lora.random_lora({"transformer_blocks.0.attn1.to_q": (4096, 4096)}, rank=2)
    tiny_lora.write_lora(env["loras"] / "big.safetensors", big, "comfyui_trainer", None)
    with pytest.raises(ValueError, match="'big.safetensors' does not fit this model"):
        with_lora(nodes, base, "big.safetensors", 1.0)


def test_unsupported_adapter_is_named(nodes, base, env):
    save_file({"transformer.proj_out.vera_lambda_b": torch.zeros(128),
               "transformer.proj_out.vera_lambda_d": torch.zeros(2)}, str(env["loras"] / "vera.safetensors"))
    with pytest.raises(ValueError, match="'vera.safetensors' is not supported: VeRA"):
        with_lora(nodes, base, "vera.safetensors", 1.0)


def test_not_a_safetensors_file_is_refused(nodes, base, env):
    torch.save({"a": torch.zeros(1)}, str(env["loras"] / "pickled.safetensors"))
    with pytest.raises(ValueError, match="is a pickled PyTorch file"):
        with_lora(nodes, base, "pickled.safetensors", 1.0)
    (env["loras"] / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty or cut short"):
        with_lora(nodes, base, "empty.safetensors", 1.0)


@pytest.mark.parametrize("source", ["../outside.safetensors", "..\\outside.safetensors", "sub/../../x.safetensors",
                                    "/etc/passwd", "~/lora.safetensors", "C:\\loras\\x.safetensors"])
def test_paths_outside_the_lora_folders_are_refused(nodes, base, lora_files, source, monkeypatch):
    monkeypatch.delenv("LTX097_ALLOW_LOCAL_LORA_PATHS", raising=False)
    with pytest.raises(ValueError, match=r"is a path outside the loras folders; such paths are refused .* "
                                         r"LTX097_ALLOW_LOCAL_LORA_PATHS=1"):
        with_lora(nodes, base, "", 1.0, source=source)


def test_local_paths_work_when_allowed(nodes, comfy_host, base, lora, tcfg, inputs, tmp_path, monkeypatch):
    outside = tiny_lora.write_lora(tmp_path / "outside.safetensors", lora, "bare", ALPHA)
    monkeypatch.delenv("LTX097_ALLOW_LOCAL_LORA_PATHS", raising=False)
    with pytest.raises(ValueError, match="refused"):
        with_lora(nodes, base, "", 1.0, source=str(outside))
    monkeypatch.setenv("LTX097_ALLOW_LOCAL_LORA_PATHS", "1")
    model = with_lora(nodes, base, "", 0.5, source=str(outside))
    torch.testing.assert_close(run(comfy_host, model, inputs), reference(tcfg, inputs, (lora, 0.5 * ALPHA / RANK)),
                               **TOLERANCE)
    with pytest.raises(ValueError, match="does not exist"):
        with_lora(nodes, base, "", 1.0, source=str(tmp_path / "missing.safetensors"))
    (tmp_path / "x.ckpt").write_bytes(b"\x80\x02")
    with pytest.raises(ValueError, match="not a .safetensors file"):
        with_lora(nodes, base, "", 1.0, source=str(tmp_path / "x.ckpt"))


def test_unknown_sources_say_what_is_accepted(nodes, base, lora_files):
    with pytest.raises(ValueError, match=r"LoRA 'nope\.safetensors' was not found in the loras folders .* neither "
                                         r"an http\(s\) URL nor a Hugging Face repo id"):
        with_lora(nodes, base, "", 1.0, source="nope.safetensors")
    with pytest.raises(ValueError, match=r"uses 'ftp://'; only http\(s\) URLs are downloaded"):
        with_lora(nodes, base, "", 1.0, source="ftp://example.com/x.safetensors")
    # the source wins over the dropdown; a file name in the loras folders works as a source too
    model = with_lora(nodes, base, "no-such-choice", 1.0, source=lora_files["second"])
    assert model.extra["loras"][0]["path"] == lora_files["second"]


@pytest.mark.parametrize("text, message", [
    ("[{", r"the LoRA list is not valid JSON \(line 1, column 3"),
    ("5", r"must be a JSON list of objects with path, weight_name, scale, got a number"),
    ('[{"scale": 1}]', r"LoRA 1 needs a 'path'"),
    ('[{"path": "a.safetensors"}, 3]', r"LoRA 2 must be an object with path, weight_name, scale, got a number"),
    ('[{"path": "a.safetensors", "strength": 1}]', r"LoRA 1 has unknown field\(s\) 'strength' \(the strength is "
                                                   r"called 'scale'\)"),
    ('[{"path": "a.safetensors", "scale": "high"}]', r"LoRA 1: scale must be a finite number, got 'high'"),
    ('[{"path": "a.safetensors", "scale": NaN}]', r"LoRA 1: scale must be a finite number, got nan"),
    ('[{"path": "owner/repo", "weight_name": 3}]', r"LoRA 1: weight_name must be a file name \(text\) or null"),
])
def test_lora_list_errors_are_sentences(nodes, text, message):
    with pytest.raises(ValueError, match=message):
        nodes.parse_lora_stack(text)
    result = nodes.LTX097LoraStack.validate_inputs(loras=text)
    assert isinstance(result, str) and result


def test_lora_list_accepts_the_service_shape(nodes):
    parsed = nodes.parse_lora_stack(' [{"path": "https://x.org/a.safetensors", "weight_name": null, "scale": 0.5},'
                                    ' {"path": "owner/repo", "weight_name": "b.safetensors"}, "c.safetensors"] ')
    assert parsed == [{"path": "https://x.org/a.safetensors", "weight_name": None, "scale": 0.5},
                      {"path": "owner/repo", "weight_name": "b.safetensors", "scale": 1.0},
                      {"path": "c.safetensors", "weight_name": None, "scale": 1.0}]
    assert nodes.parse_lora_stack({"path": "a.safetensors", "scale": 2}) == [
        {"path": "a.safetensors", "weight_name": None, "scale": 2.0}]
    assert nodes.parse_lora_stack("") == [] and nodes.LTX097LoraStack.validate_inputs(loras=None) is True
    assert nodes.LTX097LoraStack.validate_inputs(loras='[{"path": "a.safetensors"}]') is True


def test_schemas(nodes, ltx_pack, lora_files):
    for cls in nodes.NODES:
        schema = cls.GET_SCHEMA()
        assert schema.node_id.startswith("LTX097") and schema.description
        assert all(i.tooltip for i in schema.inputs), schema.node_id
        assert cls in ltx_pack.nodes.NODE_LIST
    options = nodes.LTX097LoraLoader.GET_SCHEMA().inputs[1].options
    assert options[0] == "none" and set(lora_files.values()) <= set(options)


# ------------------------------------------------------------------------------------------------------------------
# The real server (API prompts)


def test_lora_nodes_in_api_prompts(comfy_server, lora):
    """The nodes driven by API prompts on the real host: a LoRA list is checked before anything runs (HTTP 400 with
    the sentence), and a LoRA from the loras folder attaches to a loaded model; a broken file fails with a sentence."""
    from support.comfy_server import HostError

    comfy_server.add_model("loras", "api_lora.safetensors",
                           lambda path: tiny_lora.write_lora(path, lora, "comfyui_trainer"))
    bad = {"1": {"class_type": "LTX097LoraStack", "inputs": {"loras": '[{"path": "a.safetensors", "strength": 1}]'}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    with pytest.raises(HostError) as error:
        comfy_server.post_prompt(bad)
    assert "LoRA 1 has unknown field(s) 'strength'" in str(error.value)

    good = {"1": {"class_type": "LTX097LoraStack",
                  "inputs": {"loras": '[{"path": "api_lora.safetensors", "scale": 0.5}]'}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    entry = comfy_server.wait(comfy_server.post_prompt(good), raise_on_error=True)
    assert '"scale": 0.5' in entry["outputs"]["2"]["text"][0]

    model = {"1": {"class_type": "LTX097ModelLoader", "inputs": {"ckpt_name": comfy_server.models["checkpoint"],
                                                                 "weight_dtype": "auto"}},
             "2": {"class_type": "LTX097LoraLoader", "inputs": {"model": ["1", 0], "lora_name": "api_lora.safetensors",
                                                                "strength": 0.8}},
             "3": {"class_type": "LTX097LoraStack", "inputs": {"loras": '["api_lora.safetensors"]'}},
             "4": {"class_type": "LTX097ApplyLoraStack", "inputs": {"model": ["2", 0], "lora_stack": ["3", 0]}},
             "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}
    entry = comfy_server.wait(comfy_server.post_prompt(model), raise_on_error=True)
    assert "'scale': 0.8" in entry["outputs"]["5"]["text"][0] and "'layers': 27" in entry["outputs"]["5"]["text"][0]

    comfy_server.add_model("loras", "broken.safetensors", lambda path: path.write_bytes(b"<html>not found</html>"))
    model["2"]["inputs"]["lora_name"] = "broken.safetensors"
    entry = comfy_server.wait(comfy_server.post_prompt(model))
    assert "is a web page (HTML)" in comfy_server.execution_error(entry)["exception_message"]
