"""The loaders' `download` switch against a local HTTP server standing in for Hugging Face (LTX097_MODEL_BASE_URL,
allowed by LTX097_URL_ALLOW_HOSTS): good downloads (single file and sharded), truncated, HTML, gated and refused
ones, with nothing half-written left behind, and no network use while the switch is off."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import tiny_assistants
from support.local_web import LocalWeb
from support.nodes_kit import node_module

pytest_plugins = ["support.comfy_host"]

CHECKER_REPO = "Falconsai/nsfw_image_detection"


@pytest.fixture(scope="module")
def served(tmp_path_factory, ltx_pack):
    """The tiny models' files served under /<repo>/resolve/main/<file> for the catalogue's repos."""
    root = tmp_path_factory.mktemp("served")
    llm = tiny_assistants.write_llm(root / "llm")
    sharded = tiny_assistants.write_llm(root / "llm_sharded", max_shard_size="8MB")
    folders = {CHECKER_REPO: tiny_assistants.write_classifier(root / "checker"),
               "Qwen/Qwen2.5-1.5B-Instruct": llm, "meta-llama/Llama-3.2-3B-Instruct": sharded,
               "Salesforce/blip-image-captioning-large": tiny_assistants.write_captioner(root / "captioner")}
    web = LocalWeb()
    for repo, folder in folders.items():
        for path in folder.iterdir():
            web.routes[f"/{repo}/resolve/main/{path.name}"] = LocalWeb.static(200, path.read_bytes())
    yield web, folders
    web.close()


@pytest.fixture
def web(served, monkeypatch):
    web, _ = served
    web.hits.clear()
    monkeypatch.setenv("LTX097_MODEL_BASE_URL", web.url)
    monkeypatch.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{web.port}")
    return web


@pytest.fixture
def folders(tmp_path, comfy_host, monkeypatch):
    """Empty models/LLM and models/safety_checker folders as the only ones ComfyUI knows."""
    roots = {key: tmp_path / key for key in ("LLM", "safety_checker")}
    for key, path in roots.items():
        path.mkdir()
        monkeypatch.setitem(comfy_host.folder_paths.folder_names_and_paths, key, ([str(path)], set()))
    return roots


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def load_checker(**kwargs):
    return node_module("safety").LTX097SafetyCheckerLoader.execute(model="nsfw_image_detection", **kwargs).result[0]


def test_switch_off_downloads_nothing_and_says_how(web, folders):
    with pytest.raises(FileNotFoundError, match=r"put config\.json, preprocessor_config\.json, model\.safetensors "
                                                r".* in .*safety_checker.nsfw_image_detection.*Switch `download` on "
                                                r"in the loader to fetch them from https://huggingface\.co/"
                                                r"Falconsai/nsfw_image_detection \(Apache-2\.0\)"):
        load_checker()
    assert web.hits == {} and list(folders["safety_checker"].iterdir()) == []


def test_checker_download_fills_the_folder_with_progress(web, folders, comfy_host, monkeypatch):
    import comfy.utils

    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        updates.append((value, total)))
    checker = load_checker(download=True)
    target = folders["safety_checker"] / "nsfw_image_detection"
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors",
                                                        "preprocessor_config.json"]
    assert leftovers(folders["safety_checker"]) == []
    assert updates and any(value == total and total > 1000 for value, total in updates)
    assert checker.classifier.unsafe_names == ("nsfw",)
    hits = dict(web.hits)
    load_checker(download=True)  # complete now: nothing fetched again
    assert web.hits == hits


def test_sharded_llm_and_captioner_download_and_run(web, folders, served):
    enhancer = node_module("enhancer")
    (models,) = enhancer.LTX097PromptEnhancerLoader.execute(llm="Llama-3.2-3B-Instruct",
                                                            captioner="blip-image-captioning-large", dtype="fp32",
                                                            download=True).result
    shards = sorted(p.name for p in (folders["LLM"] / "Llama-3.2-3B-Instruct").glob("model-*.safetensors"))
    assert len(shards) >= 2 and (folders["LLM"] / "Llama-3.2-3B-Instruct" / "model.safetensors.index.json").is_file()
    prompt, note = enhancer.LTX097PromptEnhancer.execute(prompt_enhancer=models, prompt="a cat",
                                                         max_new_tokens=8).result
    assert prompt and prompt != "a cat" and note.startswith("no conditions")
    assert leftovers(folders["LLM"]) == []


@pytest.mark.parametrize("answer, message", [
    (lambda body: LocalWeb.static(200, body, cut_at=len(body) // 2), "model.safetensors"),
    (lambda body: LocalWeb.static(200, b"<!DOCTYPE html><html>sign in</html>" + b" " * 64),
     "not a safetensors file"),
    (lambda body: LocalWeb.static(404, b"not found"), "404"),
])
def test_failed_downloads_leave_nothing_behind(web, folders, served, answer, message):
    route = f"/{CHECKER_REPO}/resolve/main/model.safetensors"
    good = web.routes[route]
    web.routes[route] = answer((served[1][CHECKER_REPO] / "model.safetensors").read_bytes())
    try:
        with pytest.raises(RuntimeError, match=f"downloading {CHECKER_REPO} into .* failed: .*{message}.*nothing "
                                               "was kept"):
            load_checker(download=True)
    finally:
        web.routes[route] = good
    assert list(folders["safety_checker"].iterdir()) == []  # not even the files that did arrive


def test_gated_model_says_so(web, folders):
    route = "/meta-llama/Llama-3.2-3B-Instruct/resolve/main/config.json"
    good = web.routes[route]
    web.routes[route] = LocalWeb.static(401, b"access to this model is restricted")
    try:
        with pytest.raises(RuntimeError, match="is gated: accept its licence at https://huggingface.co/meta-llama/"):
            node_module("enhancer").LTX097PromptEnhancerLoader.execute(llm="Llama-3.2-3B-Instruct", download=True)
    finally:
        web.routes[route] = good
    assert list(folders["LLM"].iterdir()) == []


def test_local_addresses_are_refused_unless_allowed(web, folders, monkeypatch):
    monkeypatch.delenv("LTX097_URL_ALLOW_HOSTS")
    with pytest.raises(RuntimeError, match=f"downloading {CHECKER_REPO} .* failed: .*nothing was kept"):
        load_checker(download=True)
    assert web.hits == {} and list(folders["safety_checker"].iterdir()) == []
