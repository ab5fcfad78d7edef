"""LTX-Video 0.9.7 for ComfyUI on a native torch implementation (`ltx_core`).

Registers its nodes with ComfyUI's V3 API (`comfy_entrypoint`). Importing this package outside ComfyUI (tools,
pytest collecting the repo) registers nothing and needs nothing from ComfyUI; inside ComfyUI any error in the
nodes propagates, so the host reports the pack as failed instead of silently loading without nodes.
"""

import importlib.util

WEB_DIRECTORY = "./js"


def _inside_comfyui() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("comfy_api", "folder_paths"))


if _inside_comfyui():
    from comfy_api.latest import ComfyExtension, io

    from .nodes import NODE_LIST

    class LTX097Extension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODE_LIST)

    async def comfy_entrypoint() -> LTX097Extension:
        return LTX097Extension()
