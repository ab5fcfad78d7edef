"""Write the shipped workflows (`workflows/*.json`, UI format) by building them in ComfyUI's own frontend.

Each graph of `workflow_graphs.py` is built in the real frontend (headless Chromium, the pinned ComfyUI and this pack):
nodes are created from the server's node definitions, widgets are set by name and links are made by slot name, then the
frontend serialises the graph. So the files are exactly what the 0.3.75 frontend saves, with the widget order,
sizes and socket lists it uses. Loader nodes carry download links (`properties.models`) and each graph has a note
saying where every file goes. Every node names the pack that provides it in `properties` (`cnr_id`, `ver`, and
`aux_id` for this pack), as the frontend does for installed packs, so a ComfyUI without this pack names it for the
missing nodes. With `--thumbnails` a `.jpg` of each graph is written next to it (ComfyUI shows it in the template
browser).

    .venv/bin/python scripts/make_workflows.py [--thumbnails] [--only NAME]

Needs `make setup` (the venv, the pinned ComfyUI and Debian's chromium). The tests check the files against the
live server's `/object_info` and run every one of them, so re-run this after changing a node's inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

from workflow_graphs import (
    CORE_PACK_ID,
    FRONTEND_VERSION,
    PACK_ID,
    PACK_PROPERTIES,
    ROOT,
    WORKFLOWS,
    WORKFLOWS_DIR,
    Workflow,
)

sys.path.insert(0, str(ROOT / "tests"))

# ----------------------------------------------------------------------------------------------------------------
# Building in the frontend

BUILD_JS = r"""
async (spec) => {
  app.graph.clear();
  const byKey = {};
  for (const s of spec.nodes) {
    const node = LiteGraph.createNode(s.type);
    if (!node) throw new Error(`the frontend does not know the node type ${s.type}`);
    app.graph.add(node);
    node.pos = s.pos;
    if (s.title) node.title = s.title;
    for (const [name, value] of Object.entries(s.widgets)) {
      const widget = name === "$text" ? node.widgets?.[0] : node.widgets?.find(w => w.name === name);
      if (!widget) throw new Error(`${s.type} has no widget ${name}`);
      widget.value = value;
    }
    if (s.colors) Object.assign(node, s.colors);
    if (s.models) node.properties.models = s.models;
    byKey[s.key] = node;
  }
  for (const [from, output, to, input] of spec.links) {
    const a = byKey[from], b = byKey[to];
    const slotOut = a.outputs.findIndex(o => o.name === output);
    const slotIn = b.inputs.findIndex(i => i.name === input);
    if (slotOut < 0 || slotIn < 0) throw new Error(`no link ${from}.${output} -> ${to}.${input}`);
    if (!a.connect(slotOut, b, slotIn)) throw new Error(`link ${from}.${output} -> ${to}.${input} refused`);
  }
  for (const s of spec.nodes) {
    const node = byKey[s.key];
    const needed = node.computeSize();
    node.setSize([Math.max(needed[0], s.size?.[0] ?? 0), Math.max(needed[1], s.size?.[1] ?? 0)]);
    for (const [name, value] of Object.entries(s.widgets)) {  // some widgets reset on connect: set again
      const widget = name === "$text" ? node.widgets?.[0] : node.widgets?.find(w => w.name === name);
      widget.value = value;
    }
  }
  const graph = app.graph.serialize();
  return {graph, ids: Object.fromEntries(Object.entries(byKey).map(([k, n]) => [k, n.id]))};
}
"""

GROUP_COLOR = "#3f789e"
NODE_TITLE = 30
GROUP_HEADER = 40
GROUP_MARGIN = 15


def group_bounds(nodes: list[dict]) -> list[float]:
    left = min(n["pos"][0] for n in nodes) - GROUP_MARGIN
    top = min(n["pos"][1] for n in nodes) - NODE_TITLE - GROUP_HEADER
    right = max(n["pos"][0] + n["size"][0] for n in nodes) + GROUP_MARGIN
    bottom = max(n["pos"][1] + n["size"][1] for n in nodes) + GROUP_MARGIN
    return [left, top, right - left, bottom - top]


def source_properties(node_type: str, object_info: dict, comfy_version: str) -> dict:
    """`cnr_id` / `aux_id` / `ver` of the pack a node type comes from ({} for frontend-only nodes such as notes)."""
    module = object_info.get(node_type, {}).get("python_module")
    if module is None:
        return {}
    if module == "nodes" or module.startswith("comfy_extras.") or module.startswith("comfy_api_nodes."):
        return {"cnr_id": CORE_PACK_ID, "ver": comfy_version}
    if node_type.startswith("LTX097"):
        return dict(PACK_PROPERTIES)
    raise ValueError(f"{node_type} comes from {module}: the shipped workflows use only core nodes and this pack")


def finish(workflow: Workflow, graph: dict, ids: dict[str, int], object_info: dict, comfy_version: str) -> dict:
    """The frontend's serialisation with groups, pack properties on every node and a stable id."""
    for node in graph["nodes"]:
        node["properties"] = {**source_properties(node["type"], object_info, comfy_version), **node["properties"]}
    by_id = {node["id"]: node for node in graph["nodes"]}
    groups = []
    for number, (title, keys) in enumerate(workflow.groups, start=1):
        groups.append({"id": number, "title": title, "bounding": group_bounds([by_id[ids[k]] for k in keys]),
                       "color": GROUP_COLOR, "font_size": 24, "flags": {}})
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PACK_ID}/workflows/{workflow.name}")),
        "revision": 0,
        "last_node_id": graph["last_node_id"],
        "last_link_id": graph["last_link_id"],
        "nodes": graph["nodes"],
        "links": graph["links"],
        "groups": groups,
        "config": {},
        "extra": {"frontendVersion": FRONTEND_VERSION},
        "version": 0.4,
    }


def spec_of(workflow: Workflow) -> dict:
    return {"nodes": [{"key": n.key, "type": n.type, "pos": list(n.pos), "widgets": n.widgets, "title": n.title,
                       "size": list(n.size) if n.size else None, "colors": n.colors, "models": n.models}
                      for n in workflow.nodes],
            "links": [list(link) for link in workflow.links]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thumbnails", action="store_true", help="also write a .jpg of each graph")
    parser.add_argument("--only", help="write only these workflows (file names without .json, comma-separated)")
    args = parser.parse_args()

    import shutil

    from support import comfy_server, e2e_browser, e2e_workflows

    with tempfile.TemporaryDirectory(prefix="ltxv097-workflows-") as folder:
        server = comfy_server.ComfyServer(Path(folder) / "host")
        # stand-ins for the media the workflows load (and ComfyUI's own example.png), so thumbnails show them
        e2e_workflows.write_input_media(server.workdir / "input")
        example = comfy_server.comfy_root() / "input" / "example.png"
        if example.is_file():
            shutil.copy(example, server.workdir / "input" / "example.png")
        with server, e2e_browser.Browser(Path(folder) / "chromium") as browser:
            e2e_browser.open_frontend(browser, server.url, extension="LTX097.VideoSize")
            object_info = server.object_info()
            comfy_version = server.get_json("/system_stats")["system"]["comfyui_version"]
            for make in WORKFLOWS:
                workflow = make()
                if args.only and workflow.name not in args.only.split(","):
                    continue
                built = browser.call(BUILD_JS, spec_of(workflow))
                data = finish(workflow, built["graph"], built["ids"], object_info, comfy_version)
                path = WORKFLOWS_DIR / f"{workflow.name}.json"
                path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
                print(f"wrote {path.relative_to(ROOT)}: {workflow.summary}")
                if args.thumbnails:
                    e2e_browser.load_workflow(browser, data)
                    e2e_browser.screenshot_graph(browser, path.with_suffix(".jpg"), scale=0.5)


if __name__ == "__main__":
    main()
