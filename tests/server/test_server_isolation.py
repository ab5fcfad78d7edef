"""The tests' ComfyUI servers keep to their own work folder: no download, output or user file lands in the shared
host tree (`.comfyui/` or the user's `COMFYUI_DIR`)."""

from pathlib import Path

from support.comfy_host import comfy_root

pytest_plugins = ["support.comfy_host"]


def test_every_folder_of_the_session_server_is_in_its_workdir(comfy_server):
    folders = comfy_server.get_json("/internal/folder_paths")
    host, workdir = comfy_root().resolve(), comfy_server.workdir.resolve()
    # The first `loras` folder is where LoRA URLs are downloaded to (`ltx097_downloads/`).
    assert Path(folders["loras"][0]).resolve().is_relative_to(workdir)
    for name, paths in folders.items():
        for path in paths:
            resolved = Path(path).resolve()
            assert not resolved.is_relative_to(host), f"{name}: {path} is inside the shared host {host}"
