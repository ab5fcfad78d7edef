"""The shipped workflows in ComfyUI's real frontend, in headless Chromium (Debian's `chromium`).

The session server serves the 0.3.75 frontend (`comfyui-frontend-package` 1.32.9) with this pack. Each workflow
is loaded through the frontend's own `app.loadGraphData`; the test asserts that every node type is known, no
node is marked broken, the page logs no console error, the frontend keeps every widget value as the file has it,
and the API prompt the frontend would queue (`app.graphToPrompt`) is the one the end-to-end tests run
(`workflow_api.to_api`). A screenshot of each graph is saved in the test's temporary folder. The pack's
extension (`js/ltxv097_video_size.js`) must load and show the video size under the sampler nodes.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

import e2e_browser
import e2e_workflows
import workflow_api
from comfy_host import PACK_NAME

pytest_plugins = ["comfy_host"]

EXTENSION = "LTX097.VideoSize"
EXTENSION_FILE = "ltxv097_video_size.js"
WORKFLOW_NAMES = [path.stem for path in e2e_workflows.workflow_paths()]
RESOLUTIONS = {"480p": {"16:9": (848, 480), "1:1": (480, 480), "9:16": (480, 848)},
               "720p": {"16:9": (1280, 720), "1:1": (720, 720), "9:16": (720, 1280)}}

OFFLINE_FILE_SIZE = "console.error: Error fetching file size: TypeError: Failed to fetch"

SIZE_TEXT_JS = r"""
() => Object.fromEntries(app.graph.nodes
  .filter(n => (n.widgets || []).some(w => w.name === 'ltx097_video_size'))
  .map(n => [n.id, [...n.widgets.find(w => w.name === 'ltx097_video_size').element.children]
                      .map(line => line.textContent)]))
"""


def expected_size_text(width: int, height: int, frames: int, frame_rate: float) -> list[str]:
    """What the extension shows (see js/ltxv097_video_size.js), computed the way ltx_core pads."""
    generated = ((frames - 2) // 8 + 1) * 8 + 1
    grid_w, grid_h = math.ceil(width / 32) * 32, math.ceil(height / 32) * 32
    rule = f"{frames} = 8·{(frames - 1) // 8}+1" if generated == frames else f"{generated} frames (8k+1)"
    return [f"{width}×{height} px · {frames} frames · {frames / frame_rate:.2f} s",
            f"model grid {grid_w}×{grid_h} · {rule}"]


@pytest.fixture(scope="module")
def frontend(comfy_server, tmp_path_factory):
    """Chromium with the frontend open on the session server; `startup_errors` are those logged while it loaded."""
    e2e_workflows.write_input_media(comfy_server.workdir / "input")
    folder = tmp_path_factory.mktemp("browser")
    with e2e_browser.Browser(folder / "chromium-profile") as browser:
        e2e_browser.open_frontend(browser, comfy_server.url, extension=EXTENSION)
        yield SimpleNamespace(browser=browser, shots=folder / "screenshots", startup_errors=browser.errors(),
                              object_info=comfy_server.object_info(), url=comfy_server.url)


def test_the_extension_loads_without_errors(frontend):
    browser = frontend.browser
    assert browser.evaluate(f"app.extensions.filter(e => e.name === '{EXTENSION}').length") == 1
    scripts = browser.evaluate("fetch('/extensions').then(r => r.json())")
    assert f"/extensions/{PACK_NAME}/{EXTENSION_FILE}" in scripts, scripts
    ours = [e for e in frontend.startup_errors if PACK_NAME in e or "LTX097" in e or EXTENSION_FILE in e]
    assert not ours, "errors from the pack while the frontend started:\n" + "\n".join(ours)


def test_every_pack_node_is_in_the_frontend(frontend):
    ours = [name for name, info in frontend.object_info.items()
            if info.get("python_module") == f"custom_nodes.{PACK_NAME}"]
    registered = frontend.browser.evaluate("Object.keys(LiteGraph.registered_node_types)")
    assert ours and not set(ours) - set(registered)


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_loads_in_the_frontend(frontend, name):
    browser = frontend.browser
    workflow = e2e_workflows.load_workflow(name)
    since = len(browser.events)
    loaded = e2e_browser.load_workflow(browser, workflow)
    shot = e2e_browser.screenshot_graph(browser, frontend.shots / f"{name}.png")
    errors = browser.errors(since)

    assert loaded["missingTypes"] == [], f"node types the frontend does not know: {loaded['missingTypes']}"
    assert all(node["registered"] for node in loaded["nodes"])
    assert not [node for node in loaded["nodes"] if node["has_errors"]]
    assert not errors, "console errors while loading the workflow:\n" + "\n".join(errors)
    assert not loaded["dialogs"], f"a dialog opened: {loaded['dialogs']}"
    assert shot.stat().st_size > 20_000

    # the frontend keeps the file's values (nothing clamped, reset or added on load; the extension adds none)
    saved = {node["id"]: node for node in loaded["graph"]["nodes"]}
    for node in workflow["nodes"]:
        assert saved[node["id"]].get("widgets_values") == node.get("widgets_values"), node["type"]
    assert [link[:5] for link in loaded["graph"]["links"]] == [link[:5] for link in workflow["links"]]

    # what the frontend would queue is what the end-to-end tests convert the file to
    ours = workflow_api.to_api(workflow, frontend.object_info)
    theirs = loaded["prompt"]
    assert sorted(theirs) == sorted(ours)
    for node_id, node in ours.items():
        assert theirs[node_id]["class_type"] == node["class_type"]
        # the frontend also sends its preview widgets (LoadVideo's, PreviewAny's), which the server ignores
        definition = frontend.object_info[node["class_type"]]["input"]
        defined = {**definition.get("required", {}), **definition.get("optional", {})}
        sent = {k: v for k, v in theirs[node_id]["inputs"].items() if k in defined}
        assert sent == node["inputs"], node["class_type"]

    # the extension's size line under the samplers
    shown = browser.call(SIZE_TEXT_JS)
    for node_id, node in ours.items():
        inputs = node["inputs"]
        if node["class_type"] == "LTX097Sampler":
            expected = expected_size_text(inputs["width"], inputs["height"], inputs["num_frames"], inputs["frame_rate"])
        elif node["class_type"] == "LTX097TextToVideo":
            width, height = RESOLUTIONS[inputs["resolution"]][inputs["aspect_ratio"]]
            expected = expected_size_text(width, height, inputs["number_of_frames"], inputs["frame_rate"])
        else:
            assert node_id not in shown
            continue
        assert shown[node_id] == expected


def test_size_text_follows_the_widgets(frontend):
    """Editing resolution, aspect ratio and frame count updates the text at once (90 frames → 97 generated)."""
    browser = frontend.browser
    e2e_browser.load_workflow(browser, e2e_workflows.load_workflow("ltxv097_text_to_video_one_node"))
    since = len(browser.events)
    shown = browser.call(r"""
      async () => {
        const node = app.graph.nodes.find(n => n.type === 'LTX097TextToVideo');
        const set = (name, value) => { const w = node.widgets.find(w => w.name === name); w.value = value;
                                       w.callback?.(value); };
        set('resolution', '480p'); set('aspect_ratio', '9:16'); set('number_of_frames', 90);
        const line = () => [...node.widgets.find(w => w.name === 'ltx097_video_size').element.children]
                             .map(l => l.textContent);
        const after = line();
        set('frame_rate', 30);
        return [after, line()];
      }""")
    assert shown[0] == expected_size_text(480, 848, 90, 25.0)
    assert shown[0][1] == "model grid 480×864 · 97 frames (8k+1)"
    assert shown[1] == expected_size_text(480, 848, 90, 30.0)
    e2e_browser.screenshot_graph(browser, frontend.shots / "size_text_edited.png")
    assert not browser.errors(since)


def test_missing_models_dialog_offers_the_downloads(frontend):
    """On a ComfyUI without the files, loading a workflow lists each model file with its download link."""
    browser = frontend.browser
    workflow = e2e_workflows.load_workflow("ltxv097_text_to_video_lora")
    since = len(browser.events)
    loaded = e2e_browser.load_workflow(browser, workflow, missing_models_dialog=True)
    browser.screenshot(frontend.shots / "missing_models_dialog.png")
    e2e_browser.close_dialogs(browser)
    (dialog,) = loaded["dialogs"]
    for name in ("ltxv-13b-0.9.7-dev.safetensors", "ltxv-spatial-upscaler-0.9.7.safetensors",
                 "t5xxl_fp16.safetensors"):
        assert name in dialog, dialog
    # the dialog asks each download link for the file size, which fails without internet
    errors = [e for e in browser.errors(since) if not e.startswith(OFFLINE_FILE_SIZE)]
    assert not errors, "\n".join(errors)
