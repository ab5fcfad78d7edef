"""The running ComfyUI, as the API needs it: its queue, history, folders, interrupt and listen address.

The only module of `service/` that imports ComfyUI (inside the server process only). Prompts go through the same
validation and queue as the UI's `POST /prompt`, so API and UI runs share the GPU in order and API runs show
progress in the UI.
"""

from __future__ import annotations

import time
from pathlib import Path

import execution
import folder_paths
from comfy.cli_args import args
from server import PromptServer

import nodes as comfy_nodes

from ..nodes.video import WITHOUT_METADATA

LOW_PRIORITY_OFFSET = 10 ** 9
"""Added to a low-priority prompt's queue number (ComfyUI takes the lowest number first)."""


class PromptRefused(Exception):
    """ComfyUI's validation refused the prompt; `node_errors` is its per-node answer."""

    def __init__(self, message: str, node_errors: dict):
        super().__init__(message)
        self.node_errors = node_errors


class ComfyHost:
    def __init__(self, server: PromptServer | None = None):
        self.server = server or PromptServer.instance

    @property
    def routes(self):
        return self.server.routes

    def add_middleware(self, middleware) -> None:
        """Run `middleware` on every request of ComfyUI's app (its sub-apps too); the app is not started yet while
        node packs are imported, so its middleware list is still open."""
        self.server.app.middlewares.append(middleware)

    @property
    def loop(self):
        return self.server.loop

    def user_dir(self) -> Path:
        return Path(folder_paths.get_user_directory())

    def input_dir(self) -> Path:
        return Path(folder_paths.get_input_directory())

    def output_dir(self) -> Path:
        return Path(folder_paths.get_output_directory())

    def listen_addresses(self) -> list[str]:
        return [address.strip() for address in str(args.listen).split(",") if address.strip()]

    def node_inputs(self, class_type: str) -> set[str]:
        node = comfy_nodes.NODE_CLASS_MAPPINGS.get(class_type)
        if node is None:
            return set()
        spec = node.INPUT_TYPES()
        return set(spec.get("required", {})) | set(spec.get("optional", {}))

    def app(self):
        """The aiohttp application (its middlewares can still be added while custom nodes load)."""
        return self.server.app

    def missing_feature_models(self) -> dict[str, str]:
        """Field → default model folder (relative to models/) of each switchable feature whose model is missing."""
        from ..nodes.enhancer import missing_default_enhancer
        from ..nodes.safety import missing_default_checker

        found = {"enable_safety_checker": missing_default_checker(), "expand_prompt": missing_default_enhancer()}
        return {field: folder for field, folder in found.items() if folder}

    def lora_file_missing(self, path: str) -> bool:
        """A LoRA named as a file (not a URL or `owner/repo`) that is in none of the loras folders."""
        if "://" in path or ("/" in path and not path.lower().endswith((".safetensors", ".sft"))):
            return False
        return folder_paths.get_full_path("loras", path) is None

    async def queue(self, prompt: dict, prompt_id: str, *, low_priority: bool = False) -> None:
        """Validate and queue like `POST /prompt` (no client id: progress goes to every open UI). ComfyUI runs its
        queue in number order: a low-priority prompt's number is moved behind every normal one. The mp4 keeps no
        metadata: identical requests give identical files, and no request's id or URLs are stored in them."""
        valid = await execution.validate_prompt(prompt_id, prompt, None)
        if not valid[0]:
            raise PromptRefused(str(valid[1].get("message", valid[1])) if isinstance(valid[1], dict)
                                else str(valid[1]), valid[3])
        number = self.server.number + (LOW_PRIORITY_OFFSET if low_priority else 0)
        self.server.number += 1
        extra_data = {"create_time": int(time.time() * 1000), "extra_pnginfo": {WITHOUT_METADATA: True}}
        self.server.prompt_queue.put((number, prompt_id, prompt, extra_data, valid[2], {}))

    def queue_order(self) -> tuple[set[str], list[str]]:
        """(ids running now, ids waiting in the order they will run)."""
        running, pending = self.server.prompt_queue.get_current_queue_volatile()
        return {item[1] for item in running}, [item[1] for item in sorted(pending, key=lambda item: item[0])]

    def history(self, prompt_id: str) -> dict | None:
        return self.server.prompt_queue.get_history(prompt_id=prompt_id).get(prompt_id)

    def remove_queued(self, prompt_id: str) -> bool:
        return self.server.prompt_queue.delete_queue_item(lambda item: item[1] == prompt_id)

    def interrupt(self, prompt_id: str) -> None:
        running, _ = self.queue_order()
        if prompt_id in running:
            comfy_nodes.interrupt_processing()

    def current_prompt_id(self) -> str | None:
        return getattr(self.server, "last_prompt_id", None)
