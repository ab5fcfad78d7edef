"""LTX-Video 0.9.7 for ComfyUI on a native torch implementation (`ltx_core`).

Registers its nodes with ComfyUI's V3 API (`comfy_entrypoint`) and the hosted service's HTTP API (`service/`) on
ComfyUI's server. Importing this package outside ComfyUI (tools,
pytest collecting the repo) registers nothing and needs nothing from ComfyUI; inside ComfyUI any error in the
nodes propagates, so the host reports the pack as failed instead of silently loading without nodes.
"""

import importlib.util
import sys

WEB_DIRECTORY = "./js"


def _inside_comfyui() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("comfy_api", "folder_paths"))


def _prompt_server():
    """ComfyUI's running server, or None (in-process tests and tools import the pack without one)."""
    return getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)


if _inside_comfyui():
    from comfy_api.latest import ComfyExtension, io

    from . import fetch, media
    from .nodes import NODE_LIST
    from .nodes.lora_sources import remove_unfinished_downloads
    from .nodes.run_log import add_listener
    from .nodes.video import remove_unfinished_videos
    from .service import start as start_api

    API = None
    if _prompt_server() is not None:  # the server's start-up (not a tool or a test importing the pack)
        remove_unfinished_videos()
        remove_unfinished_downloads()
        API = start_api(add_listener, fetch, media)

    class LTX097Extension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODE_LIST)

    async def comfy_entrypoint() -> LTX097Extension:
        return LTX097Extension()
