"""Test-only ComfyUI nodes (never shipped): `LTX097TestTinyT5Loader` loads the tiny T5 of `tests/support/tiny_t5.py`;
`LTX097TestImageDigest` shows the SHA-256 of an IMAGE's exact values, so a test can compare frames bit for bit;
`GET /ltx097_test/routes` lists every route of the server's app (sub-apps and static folders included), so a test
can try each one.

ComfyUI's `CLIPLoader` only recognises full-size T5-XXL files, so end-to-end tests and the tiny demo load the
tiny T5 through this node instead. Install it with `tiny_t5.install_test_nodes(<workdir>/custom_nodes)`.
"""

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import folder_paths
from comfy_api.latest import ComfyExtension, io

_MODULE = "ltx097_tests_tiny_t5"


def _tiny_t5():
    if _MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE, Path(__file__).resolve().parents[1] / "tiny_t5.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[_MODULE]


class LTX097TestTinyT5Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = [n for n in folder_paths.get_filename_list("text_encoders") if n.endswith(".safetensors")]
        return io.Schema(
            node_id="LTX097TestTinyT5Loader",
            display_name="LTX-Video 0.9.7 Test Tiny T5 Loader",
            category="LTX-Video 0.9.7/testing",
            description="Test only: loads a tiny random T5 written by tests/support/tiny_t5.py as a CLIP (like "
                        "Load CLIP, type ltxv, does for T5-XXL).",
            inputs=[io.Combo.Input("t5_name", options=sorted(names),
                                   tooltip="A tiny T5 file in models/text_encoders (tests/support/tiny_t5.py).")],
            outputs=[io.Clip.Output(display_name="clip", tooltip="The tiny T5 text encoder.")],
        )

    @classmethod
    def execute(cls, t5_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("text_encoders", t5_name)
        return io.NodeOutput(_tiny_t5().load_tiny_t5(os.fspath(path)))


class LTX097TestImageDigest(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097TestImageDigest",
            display_name="LTX-Video 0.9.7 Test Image Digest",
            category="LTX-Video 0.9.7/testing",
            description="Test only: shows the shape, dtype and SHA-256 of the IMAGE's values (as float32).",
            inputs=[io.Image.Input("images", tooltip="The frames to fingerprint.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images) -> io.NodeOutput:
        values = images.detach().to(device="cpu").contiguous()
        digest = hashlib.sha256(values.float().numpy().tobytes()).hexdigest()
        return io.NodeOutput(ui={"text": [f"{tuple(values.shape)} {values.dtype} {digest}"]})


def app_routes(app) -> list[dict]:
    """{"method", "path"} of every route of `app` and its sub-apps (whose paths aiohttp has already prefixed); a
    static folder is its prefix + "/*"."""
    from aiohttp import web

    found = []
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            found += app_routes(resource.get_info()["app"])
        elif isinstance(resource, web.StaticResource):
            found.append({"method": "GET", "path": resource.canonical + "/*"})
        else:
            found += [{"method": route.method, "path": resource.canonical} for route in resource]
    return found


def _add_routes_route():
    from aiohttp import web
    from server import PromptServer

    server = getattr(PromptServer, "instance", None)
    if server is not None:
        server.routes.get("/ltx097_test/routes")(lambda request: web.json_response(app_routes(server.app)))


_add_routes_route()


class _TestNodes(ComfyExtension):
    async def get_node_list(self):
        return [LTX097TestTinyT5Loader, LTX097TestImageDigest]


async def comfy_entrypoint():
    return _TestNodes()
