"""Prompt expansion (`expand_prompt`) on tiny random models in models/LLM/: the text-to-video, image-to-video and
"other conditioning" paths, the T5 budget, greedy determinism, ComfyUI memory management, loader errors."""

from __future__ import annotations

import json

import pytest
import torch

from support import assistants_kit, tiny_assistants
from support.nodes_kit import node_module

pytest_plugins = ["support.comfy_host"]

PROMPT = "a cat on a sofa"


@pytest.fixture(scope="module")
def names(tmp_path_factory, comfy_host, ltx_pack):
    return assistants_kit.register(tmp_path_factory.mktemp("assistant_models"), comfy_host.folder_paths)


@pytest.fixture(scope="module")
def enhancer_nodes(names):
    return node_module("enhancer")


@pytest.fixture(scope="module")
def models(names, enhancer_nodes):
    (loaded,) = enhancer_nodes.LTX097PromptEnhancerLoader.execute(llm=names["llm"], captioner=names["captioner"],
                                                                  dtype="fp32").result
    return loaded


def enhance(enhancer_nodes, models, prompt=PROMPT, **kwargs):
    kwargs.setdefault("max_new_tokens", 24)
    return enhancer_nodes.LTX097PromptEnhancer.execute(prompt_enhancer=models, prompt=prompt, **kwargs).result


def image_condition(start_frame=0, seed=3):
    image = torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(seed))
    (conditions,) = node_module("conditioning").LTX097ImageCondition.execute(image=image,
                                                                             start_frame=start_frame).result
    return conditions


def test_loader_lists_the_model_folders(enhancer_nodes, names):
    inputs = {i.id: i for i in enhancer_nodes.LTX097PromptEnhancerLoader.GET_SCHEMA().inputs}
    assert {names["llm"], names["captioner"]} <= set(inputs["llm"].options)
    assert inputs["captioner"].options[0] == "none"


def test_text_to_video_expansion_is_greedy_and_deterministic(enhancer_nodes, models, caplog):
    with caplog.at_level("INFO"):
        prompt, note = enhance(enhancer_nodes, models)
    assert prompt and prompt != PROMPT and note.startswith("no conditions: text-to-video")
    assert "prompt expansion (t2v)" in caplog.text
    assert enhance(enhancer_nodes, models) == (prompt, note)  # greedy: the same every run ...
    assert enhance(enhancer_nodes, models, seed=5)[0] == prompt  # ... whatever the seed
    sampled = {s: enhance(enhancer_nodes, models, temperature=1.0, seed=s)[0] for s in (1, 2)}
    assert sampled[1] != sampled[2] and sampled[1] != prompt
    assert enhance(enhancer_nodes, models, temperature=1.0, seed=1)[0] == sampled[1]


def test_image_to_video_captions_the_image_and_writes_from_the_caption(enhancer_nodes, models):
    prompt, note = enhance(enhancer_nodes, models, conditions=image_condition())
    assert note.startswith("one image at frame 0: image-to-video") and "image caption: " in note
    caption = note.split("image caption: ")[1]
    assert caption and set(caption.split()) <= set(tiny_assistants.CAPTION_WORDS)
    assert prompt and prompt != PROMPT


def test_the_caption_reaches_the_llm(enhancer_nodes, models, monkeypatch):
    from ltxv097.assistants import enhancer as llm

    seen = {}
    original = llm.write_prompt

    def spy(text_model, prompt, caption_text, **kwargs):
        seen["caption"] = caption_text
        return original(text_model, prompt, caption_text, **kwargs)

    monkeypatch.setattr(llm, "write_prompt", spy)
    _, note = enhance(enhancer_nodes, models, conditions=image_condition())
    assert seen["caption"] and note.endswith(seen["caption"])
    assert "image_caption: " + seen["caption"] in llm.user_message(PROMPT, seen["caption"])


@pytest.mark.parametrize("conditions, described", [
    (lambda: image_condition(start_frame=8), "image at frame 8"),
    (lambda: image_condition() + image_condition(start_frame=-1), "image at frame 0, image at frame -1"),
    (lambda: node_module("conditioning").LTX097VideoCondition.execute(images=torch.rand(9, 32, 32, 3)).result[0],
     "video at frame 0"),
])
def test_other_conditioning_keeps_the_prompt_and_says_so(enhancer_nodes, models, conditions, described, caplog):
    with caplog.at_level("INFO"):
        prompt, note = enhance(enhancer_nodes, models, conditions=conditions())
    assert prompt == PROMPT
    assert f"not these conditions ({described}): the prompt is kept as written" in note
    assert note in caplog.text


def test_long_prompts_are_kept_unless_the_threshold_is_off(enhancer_nodes, models):
    long_prompt = " ".join(["word"] * 120)
    prompt, note = enhance(enhancer_nodes, models, prompt=long_prompt)
    assert prompt == long_prompt and "has 120 words (at least 120): kept" in note
    assert enhance(enhancer_nodes, models, prompt=" ".join(["word"] * 119))[0] != " ".join(["word"] * 119)
    assert enhance(enhancer_nodes, models, prompt=long_prompt, keep_prompts_from_words=0)[0] != long_prompt


def test_without_a_captioner_image_prompts_are_kept(enhancer_nodes, names):
    (models,) = enhancer_nodes.LTX097PromptEnhancerLoader.execute(llm=names["llm"], captioner="none",
                                                                  dtype="fp32").result
    prompt, note = enhance(enhancer_nodes, models, conditions=image_condition())
    assert prompt == PROMPT and "no image captioner is loaded" in note


def test_the_result_fits_the_t5_budget(enhancer_nodes, models):
    from ltxv097.assistants import enhancer as llm

    count = enhancer_nodes.t5_token_count
    text_model = llm.TextModel(models.llm.model.hf_model, models.tokenizer, None)
    written = llm.write_prompt(text_model, PROMPT, None, max_new_tokens=160)
    assert count(written) > 256  # the LLM wrote more than T5 reads ...
    prompt, _ = enhance(enhancer_nodes, models, max_new_tokens=160)
    assert 200 < count(prompt) <= 256 and " ".join(written.split()).startswith(prompt)  # ... and it was cut


def test_fit_to_budget_cuts_whole_sentences_then_words(ltx_pack):
    from ltxv097.assistants.prompts import fit_to_budget

    words = lambda text: len(text.split())  # noqa: E731 - a token counter where a token is a word
    text = "One two three. Four five six seven. Eight nine."
    assert fit_to_budget(text, words, 9) == text
    assert fit_to_budget(text, words, 8) == "One two three. Four five six seven."
    assert fit_to_budget(text, words, 6) == "One two three."
    assert fit_to_budget("one two three four five", words, 3) == "one two three"


def test_the_llm_is_a_comfyui_managed_model_and_is_unloaded_for_others(enhancer_nodes, models, comfy_host):
    mm = comfy_host.model_management
    enhance(enhancer_nodes, models)
    loaded = [entry.model for entry in mm.current_loaded_models]
    assert models.llm in loaded
    mm.free_memory(1 << 60, models.llm.load_device)  # what load_models_gpu does to fit the 13B transformer
    assert models.llm not in [entry.model for entry in mm.current_loaded_models]
    assert enhance(enhancer_nodes, models)[0] == enhance(enhancer_nodes, models)[0]  # loads again when used


def test_loader_errors_name_the_folder_and_files(enhancer_nodes, names, tmp_path, comfy_host):
    with pytest.raises(FileNotFoundError, match=r"'Llama-3\.2-3B-Instruct' was not found: put config\.json, "
                                                r"tokenizer_config\.json, model\.safetensors .* in .*LLM"):
        enhancer_nodes.LTX097PromptEnhancerLoader.execute(llm="Llama-3.2-3B-Instruct")
    with pytest.raises(ValueError, match="'vit' model; supported: blip"):
        comfy_host.folder_paths.add_model_folder_path("LLM", str(tmp_path))
        tiny_assistants.write_classifier(tmp_path / "not-a-captioner")
        (tmp_path / "not-a-captioner" / "tokenizer_config.json").write_text("{}")
        enhancer_nodes.LTX097PromptEnhancerLoader.execute(llm=names["llm"], captioner="not-a-captioner")


def test_models_that_need_remote_code_are_refused(enhancer_nodes, names, tmp_path, comfy_host):
    folder = tmp_path / "remote-code-captioner"
    tiny_assistants.write_captioner(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="florence2", auto_map={"AutoConfig": "configuration_florence2.Florence2Config"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_florence2.py").write_text("raise SystemExit('remote code ran')\n")
    comfy_host.folder_paths.add_model_folder_path("LLM", str(tmp_path))
    with pytest.raises(ValueError, match="never runs code downloaded with a model"):
        enhancer_nodes.LTX097PromptEnhancerLoader.execute(llm=names["llm"], captioner="remote-code-captioner")
