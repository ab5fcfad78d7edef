"""The shipped workflows in ComfyUI's real frontend, in headless Chromium (Debian's `chromium`), twice: in the
frontend ComfyUI 0.3.75 pins (`comfyui-frontend-package` 1.32.9, the session server) and in the newest one on the
package registry (`.venv-tools/frontend`, made by `scripts/setup_tools.sh`; a server of its own started with
`--front-end-root`).

Each workflow is loaded through the frontend's own `app.loadGraphData`; the test asserts that every node type is
known, no node is marked broken, the frontend keeps every widget value as the file has it, the API prompt the
frontend would queue (`app.graphToPrompt`) is the one the end-to-end tests run (`workflow_api.to_api`), and the
pack's extension (`js/ltxv097_video_size.js`) shows the video size under the sampler nodes. The pack's scripts
cause no console warning or error in either frontend (deprecation warnings included, each one reported); the
pinned frontend logs no console error at all (the newest one also complains about server APIs 0.3.75 lacks).
Opened in a ComfyUI without the pack, a workflow names this pack for its missing nodes (the newest frontend's
"Missing Node Packs"). Screenshots land in the test's temporary folder; with `LTXV097_UPDATE_SCREENSHOTS=1` the
main workflow's in the pinned frontend (the newest one outlines the loaders, whose official files the test host
lacks) also replaces the README's (`assets/`).
"""

from __future__ import annotations

import contextlib
import math
import os
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from support import e2e_browser, e2e_workflows, workflow_api
from support.comfy_host import PACK_NAME, REPO_ROOT, ComfyServer

pytest_plugins = ["support.comfy_host"]

EXTENSION = "LTX097.VideoSize"
EXTENSION_FILE = "ltxv097_video_size.js"
WORKFLOW_NAMES = [path.stem for path in e2e_workflows.workflow_paths()]
RESOLUTIONS = {"480p": {"16:9": (848, 480), "1:1": (480, 480), "9:16": (480, 848)},
               "720p": {"16:9": (1280, 720), "1:1": (720, 720), "9:16": (720, 1280)}}

OFFLINE_FILE_SIZE = "console.error: Error fetching file size: TypeError: Failed to fetch"
NEWEST_FRONTEND = REPO_ROOT / ".venv-tools" / "frontend"
FRONTENDS = ("pinned", "newest")
PACK_SCRIPTS = f"/extensions/{PACK_NAME}/"
README_SCREENSHOT = REPO_ROOT / "assets" / "workflow_text_to_video_lora.jpg"
MAIN_WORKFLOW = "ltxv097_text_to_video_lora"


def newest_frontend() -> tuple[Path, str]:
    """(static folder, version) of the newest frontend package installed by scripts/setup_tools.sh."""
    (dist,) = NEWEST_FRONTEND.glob("comfyui_frontend_package-*.dist-info")
    static = NEWEST_FRONTEND / "comfyui_frontend_package" / "static"
    if not (static / "index.html").is_file():
        raise RuntimeError(f"no frontend in {static}: run scripts/setup_tools.sh (make test does)")
    return static, metadata.Distribution.at(dist).version


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])


ISSUES_PANEL_JS = r"""
async () => {
  if (app.extensionManager.focusMode) app.extensionManager.toggleFocusMode();  // screenshots hide the panels
  await new Promise(r => setTimeout(r, 300));
  const button = [...document.querySelectorAll('button')].find(b => b.innerText.includes('View details'));
  button?.click();
  await new Promise(r => setTimeout(r, 800));
  return document.body.innerText;
}
"""

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


@pytest.fixture(scope="module", params=FRONTENDS)
def frontend(request, tmp_path_factory):
    """Chromium with a frontend open on a server with the pack: the pinned one on the session server, the newest
    one on a server of its own. `startup_errors` are those logged while it loaded."""
    folder = tmp_path_factory.mktemp(f"browser-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "pinned":
            server, version = request.getfixturevalue("comfy_server"), metadata.version("comfyui-frontend-package")
        else:
            static, version = newest_frontend()
            server = stack.enter_context(ComfyServer(folder / "host", extra_args=["--front-end-root", str(static)]))
        e2e_workflows.write_input_media(server.workdir / "input")
        browser = stack.enter_context(e2e_browser.Browser(folder / "chromium-profile"))
        e2e_browser.open_frontend(browser, server.url, extension=EXTENSION)
        # report every deprecation warning, not only the first of its kind in the page
        browser.evaluate("if ('alwaysRepeatWarnings' in LiteGraph) LiteGraph.alwaysRepeatWarnings = true")
        yield SimpleNamespace(name=request.param, version=version, browser=browser, shots=folder / "screenshots",
                              startup_errors=browser.errors(), object_info=server.object_info(), url=server.url)


def frontend_errors(frontend, since: int) -> list[str]:
    """What must stay empty: every console error in the pinned frontend, the pack's in the newest one."""
    if frontend.name == "pinned":
        return frontend.browser.errors(since)
    return frontend.browser.messages_from(PACK_SCRIPTS, since)


def test_the_frontend_is_the_one_asked_for(frontend):
    assert frontend.browser.evaluate("window.__COMFYUI_FRONTEND_VERSION__") == frontend.version
    if frontend.name == "newest":
        pinned = metadata.version("comfyui-frontend-package")
        assert version_tuple(frontend.version) > version_tuple(pinned), (frontend.version, pinned)


def test_the_extension_loads_without_errors(frontend):
    browser = frontend.browser
    assert browser.evaluate(f"app.extensions.filter(e => e.name === '{EXTENSION}').length") == 1
    scripts = browser.evaluate("fetch('/extensions').then(r => r.json())")
    assert f"/extensions/{PACK_NAME}/{EXTENSION_FILE}" in scripts, scripts
    ours = [e for e in frontend.startup_errors if PACK_NAME in e or "LTX097" in e or EXTENSION_FILE in e]
    ours += browser.messages_from(PACK_SCRIPTS)
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
    if name == MAIN_WORKFLOW and frontend.name == "pinned" and os.environ.get("LTXV097_UPDATE_SCREENSHOTS"):
        e2e_browser.screenshot_graph(browser, README_SCREENSHOT, quality=70, scale=0.75)
    errors = frontend_errors(frontend, since)
    warnings = browser.messages_from(PACK_SCRIPTS, since)

    assert loaded["missingTypes"] == [], f"node types the frontend does not know: {loaded['missingTypes']}"
    assert all(node["registered"] for node in loaded["nodes"])
    # the newest frontend flags loaders whose model files the server lacks (the official files, the LoRA example)
    flagged = {str(node["id"]) for node in loaded["nodes"] if node["has_errors"]}
    loaders = {str(node["id"]) for node in workflow["nodes"]
               if any(str(value).endswith(".safetensors") for value in node.get("widgets_values") or [])}
    assert flagged == (set() if frontend.name == "pinned" else loaders)
    assert not errors, "console errors while loading the workflow:\n" + "\n".join(errors)
    assert not warnings, "console warnings from the pack:\n" + "\n".join(warnings)
    assert not loaded["dialogs"], f"a dialog opened: {loaded['dialogs']}"
    assert shot.stat().st_size > 20_000

    # the frontend keeps the file's values (nothing clamped, reset or added on load; the extension adds none); a
    # node without widgets (Get Video Components) has no widgets_values in one frontend and [] in the other
    saved = {node["id"]: node for node in loaded["graph"]["nodes"]}
    for node in workflow["nodes"]:
        assert (saved[node["id"]].get("widgets_values") or []) == (node.get("widgets_values") or []), node["type"]
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
    assert not frontend_errors(frontend, since) and not browser.messages_from(PACK_SCRIPTS, since)


LINK_WIDTH_JS = r"""
async () => {
  const sampler = app.graph.nodes.find(n => n.type === 'LTX097Sampler');
  const line = () => [...sampler.widgets.find(w => w.name === 'ltx097_video_size').element.children]
                       .map(l => l.textContent);
  const primitive = LiteGraph.createNode('PrimitiveInt');
  app.graph.add(primitive);
  primitive.pos = [sampler.pos[0] - 300, sampler.pos[1]];
  const slot = sampler.inputs.findIndex(i => i.widget?.name === 'width');
  if (slot < 0) throw new Error('the Sampler has no input for its width widget');
  if (!primitive.connect(0, sampler, slot)) throw new Error('the link was refused');
  await new Promise(r => setTimeout(r, 100));
  const linked = line();
  sampler.disconnectInput(slot);
  await new Promise(r => setTimeout(r, 100));
  return [linked, line()];
}
"""


def test_size_text_explains_sizes_from_links(frontend):
    """A width from a link can be any number of pixels: the text says it is padded to the grid and cropped back,
    and shows the size again once the link is gone."""
    browser = frontend.browser
    e2e_browser.load_workflow(browser, e2e_workflows.load_workflow("ltxv097_text_to_video_distilled"))
    since = len(browser.events)
    linked, unlinked = browser.call(LINK_WIDTH_JS)
    assert linked == ["width from a link: known when it runs", "any size: padded to ×32 / 8k+1, cropped back"]
    assert unlinked == expected_size_text(768, 512, 97, 25.0)
    assert not frontend_errors(frontend, since) and not browser.messages_from(PACK_SCRIPTS, since)


def test_missing_models_are_offered_for_download(frontend):
    """On a ComfyUI without the files, loading a workflow lists each model file with its download: in a dialog in
    the pinned frontend, in the Issues panel in the newest one."""
    browser = frontend.browser
    workflow = e2e_workflows.load_workflow(MAIN_WORKFLOW)
    since = len(browser.events)
    loaded = e2e_browser.load_workflow(browser, workflow, missing_models_dialog=True)
    if frontend.name == "pinned":
        browser.screenshot(frontend.shots / "missing_models_dialog.png")
        e2e_browser.close_dialogs(browser)
        (shown,) = loaded["dialogs"]
    else:
        shown = browser.call(ISSUES_PANEL_JS)
        browser.screenshot(frontend.shots / "missing_models_panel.png")
    for name in ("ltxv-13b-0.9.7-dev.safetensors", "ltxv-spatial-upscaler-0.9.7.safetensors",
                 "t5xxl_fp16.safetensors"):
        assert name in shown, shown
    # the download list asks each link for the file size, which fails without internet
    errors = [e for e in frontend_errors(frontend, since) if not e.startswith(OFFLINE_FILE_SIZE)]
    assert not errors, "\n".join(errors)


def without_pack_properties(workflow: dict) -> dict:
    """The workflow as it was before its nodes named their pack."""
    nodes = [{**node, "properties": {k: v for k, v in node.get("properties", {}).items()
                                     if k not in ("cnr_id", "aux_id", "ver")}} for node in workflow["nodes"]]
    return {**workflow, "nodes": nodes}


@pytest.fixture(scope="module")
def frontend_without_pack(tmp_path_factory):
    """The newest frontend on a ComfyUI that does not have this pack."""
    folder = tmp_path_factory.mktemp("browser-without-pack")
    static, _ = newest_frontend()
    with ComfyServer(folder / "host", extra_args=["--front-end-root", str(static)], pack_dir=None) as server, \
            e2e_browser.Browser(folder / "chromium-profile") as browser:
        e2e_browser.open_frontend(browser, server.url)
        yield SimpleNamespace(browser=browser, shots=folder / "screenshots")


@pytest.mark.parametrize("named", [True, False], ids=["shipped", "without-pack-properties"])
def test_a_workflow_opened_without_the_pack_names_the_pack(frontend_without_pack, named):
    """The frontend groups missing nodes by the pack their properties name (registry id); without them it can only
    say "Unknown pack", and the Manager has nothing to install."""
    browser = frontend_without_pack.browser
    workflow = e2e_workflows.load_workflow(MAIN_WORKFLOW)
    browser.evaluate("app.graph.clear()")
    loaded = e2e_browser.load_workflow(browser, workflow if named else without_pack_properties(workflow))
    assert set(loaded["missingTypes"]) == {n["type"] for n in workflow["nodes"] if n["type"].startswith("LTX097")}
    shown = browser.call(ISSUES_PANEL_JS)
    browser.screenshot(frontend_without_pack.shots / f"missing_pack_{'named' if named else 'unknown'}.png")
    assert "Missing Node Packs" in shown, shown
    pack_id = e2e_workflows.PACK_ID
    assert (pack_id in shown, "Unknown pack" in shown) == (named, not named), shown
