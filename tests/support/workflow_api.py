"""UI-format workflows (what the frontend saves and users share) → API-format prompts (what `POST /prompt` takes).

The conversion needs the server's node definitions (`/object_info`): a UI node stores its widget values by
position (`widgets_values`), and only the definitions say which inputs are widgets, in which order, and which add
a frontend-only value after them (`control_after_generate` after a seed, the upload button after a file combo).

    prompt = to_api(workflow, server.object_info())
    prompt = set_inputs(prompt, "LTX097Sampler", width=96, height=64)

Frontend-only nodes are handled as the frontend does when it queues a prompt: notes are dropped, reroutes are
followed, a primitive node's value goes into the inputs it feeds, muted nodes are dropped and bypassed nodes pass
their input of the same type through.
"""

from __future__ import annotations

import copy
from typing import Any

NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "mesh_upload",
                "3d_upload")
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
MODE_NEVER, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    """The workflow does not fit the server's node definitions (the message names the node and the problem)."""


def is_widget(spec: list) -> bool:
    """Whether an `/object_info` input spec is shown as a widget (not a socket)."""
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_slots(definition: dict) -> list[tuple[str, str]]:
    """The widgets of a node type in `widgets_values` order: (input name, "value" | "control" | "upload")."""
    inputs = definition.get("input", {})
    order = definition.get("input_order") or {section: list(inputs.get(section, {})) for section in
                                              ("required", "optional")}
    slots = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is None or not is_widget(spec):
                continue
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            slots.append((name, "value"))
            if options.get("control_after_generate"):
                slots.append((name, "control"))
            if any(options.get(flag) for flag in UPLOAD_FLAGS):
                slots.append((name, "upload"))
    return slots


def widget_values(node: dict, definition: dict) -> dict[str, Any]:
    """{input name: value} of a UI node's widgets (frontend-only values such as the seed control left out)."""
    values = node.get("widgets_values")
    if values is None:
        return {}
    slots = widget_slots(definition)
    if isinstance(values, dict):  # some frontends and packs save widgets by name
        return {name: values[name] for name, kind in slots if kind == "value" and name in values}
    if len(values) != len(slots):
        names = ", ".join(name if kind == "value" else f"({kind} of {name})" for name, kind in slots)
        raise WorkflowError(f"node {node['id']} ({node['type']}) has {len(values)} widget values but its "
                            f"definition has {len(slots)} widgets: {names}")
    result = {}
    for (name, kind), value in zip(slots, values):
        if kind == "value":
            result[name] = value
        elif kind == "control" and value not in CONTROL_VALUES:
            raise WorkflowError(f"node {node['id']} ({node['type']}): '{value}' after {name} is not a "
                                f"control_after_generate value ({', '.join(sorted(CONTROL_VALUES))})")
    return result


class _Graph:
    def __init__(self, workflow: dict):
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = {}
        for link in workflow.get("links", []):
            if isinstance(link, dict):  # schema 1.0 links
                link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                        link.get("type")]
            self.links[link[0]] = link

    def source(self, link_id: int, seen: set | None = None) -> tuple[str, Any] | None:
        """Where a link's value comes from: ("link", [node id, slot]), ("value", x), or None (nothing: muted)."""
        seen = seen if seen is not None else set()
        if link_id in seen:
            raise WorkflowError(f"link {link_id} is part of a loop of reroutes / bypassed nodes")
        seen.add(link_id)
        _, origin_id, origin_slot, _, _, link_type = self.links[link_id]
        origin = self.nodes[origin_id]
        kind = origin["type"]
        if kind == "Reroute":
            upstream = next((i.get("link") for i in origin.get("inputs", []) if i.get("link") is not None), None)
            return None if upstream is None else self.source(upstream, seen)
        if kind == "PrimitiveNode":
            return ("value", (origin.get("widgets_values") or [None])[0])
        if origin.get("mode") == MODE_NEVER:
            return None
        if origin.get("mode") == MODE_BYPASS:
            for entry in origin.get("inputs", []):
                if entry.get("link") is not None and entry.get("type") == link_type:
                    return self.source(entry["link"], seen)
            return None
        return ("link", [str(origin_id), origin_slot])


def to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format prompt `{node id: {"class_type", "inputs", "_meta": {"title"}}}` of a UI-format workflow."""
    graph = _Graph(workflow)
    prompt = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in NOTE_TYPES or kind in ("Reroute", "PrimitiveNode"):
            continue
        if node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        if kind not in object_info:
            raise WorkflowError(f"node {node['id']} has the type {kind}, which this server does not know")
        definition = object_info[kind]
        inputs: dict[str, Any] = dict(widget_values(node, definition))
        for entry in node.get("inputs", []):
            name = entry["name"]
            if entry.get("link") is None:
                continue
            source = graph.source(entry["link"])
            if source is None:
                inputs.pop(name, None)
            else:
                inputs[name] = source[1]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or definition.get("display_name") or kind}}
    return prompt


# ----------------------------------------------------------------------------------------------------------------
# Editing API prompts (tests point workflows at tiny models and small sizes)


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    """Ids of the prompt's nodes of a type."""
    return [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]


def set_inputs(prompt: dict, class_type: str, **values: Any) -> dict:
    """A copy of `prompt` with these inputs set on every node of `class_type` (which must exist)."""
    prompt = copy.deepcopy(prompt)
    ids = nodes_of(prompt, class_type)
    if not ids:
        raise KeyError(f"the prompt has no {class_type} node")
    for node_id in ids:
        prompt[node_id]["inputs"].update(values)
    return prompt


def replace_node(prompt: dict, class_type: str, new_type: str, inputs: dict) -> dict:
    """A copy of `prompt` where every `class_type` node becomes a `new_type` node with `inputs` (links to it stay:
    the new node must have the same outputs in the same order)."""
    prompt = copy.deepcopy(prompt)
    for node_id in nodes_of(prompt, class_type):
        prompt[node_id] = {"class_type": new_type, "inputs": dict(inputs), "_meta": {"title": new_type}}
    return prompt


def add_node(prompt: dict, class_type: str, inputs: dict, node_id: str | None = None) -> tuple[dict, str]:
    """A copy of `prompt` with one more node; returns (prompt, its id)."""
    prompt = copy.deepcopy(prompt)
    node_id = node_id or str(max((int(k) for k in prompt if k.isdigit()), default=0) + 1)
    prompt[node_id] = {"class_type": class_type, "inputs": dict(inputs), "_meta": {"title": class_type}}
    return prompt, node_id


def remove_input(prompt: dict, class_type: str, name: str) -> dict:
    prompt = copy.deepcopy(prompt)
    for node_id in nodes_of(prompt, class_type):
        prompt[node_id]["inputs"].pop(name, None)
    return prompt
