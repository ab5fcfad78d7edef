"""`make demo`: render the one-node text-to-video workflow headlessly through a real ComfyUI and print the mp4.

It starts ComfyUI (the pinned host in .comfyui/, or yours with COMFYUI_DIR=...) with this pack, converts
`workflows/ltxv097_text_to_video_one_node.json` to an API prompt with the server's /object_info, queues it,
waits, and copies the video to `output/` (the path is printed last).

With the official files it renders the real thing on your GPU. They are taken from CHECKPOINT=, T5= and
UPSAMPLER= (paths), or found in the ComfyUI's models/ folders by their official names
(ltxv-13b-0.9.7-dev.safetensors or -distilled, t5xxl_fp16.safetensors, ltxv-spatial-upscaler-0.9.7.safetensors).
Without them it says so and renders the same workflow on a tiny random model and a tiny random T5 (built from
ComfyUI's own T5 classes) on the CPU in well under a minute: the picture is a meaningless texture, the path is
the real one.

    make demo
    make demo CHECKPOINT=~/models/ltxv-13b-0.9.7-distilled.safetensors T5=~/models/t5xxl_fp16.safetensors \\
              UPSAMPLER=~/models/ltxv-spatial-upscaler-0.9.7.safetensors DEMO_ARGS='--prompt "A red fox ..."'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import comfy_server  # noqa: E402  (the test harness's server launcher)
import e2e_workflows  # noqa: E402
import workflow_api  # noqa: E402

WORKFLOW = ROOT / "workflows" / "ltxv097_text_to_video_one_node.json"
OUTPUT_DIR = ROOT / "output"
NODE = "LTX097TextToVideo"
OFFICIAL = {
    "checkpoint": ("CHECKPOINT", ("checkpoints", "diffusion_models"),
                   ("ltxv-13b-0.9.7-dev.safetensors", "ltxv-13b-0.9.7-distilled.safetensors",
                    "ltxv-13b-0.9.7-dev-fp8.safetensors", "ltxv-13b-0.9.7-distilled-fp8.safetensors")),
    "t5": ("T5", ("text_encoders", "clip"), ("t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors")),
    "upsampler": ("UPSAMPLER", ("latent_upscale_models", "upscale_models"),
                  ("ltxv-spatial-upscaler-0.9.7.safetensors",)),
}
"""What the real render needs: environment variable, ComfyUI model folders to look in, official file names."""
FOLDER_FOR = {"checkpoint": "checkpoints", "t5": "text_encoders", "upsampler": "latent_upscale_models"}
TINY_FRAMES = 25
TINY_LAYERS = 3


def log(message: str) -> None:
    print(message, flush=True)


def find_models(root: Path) -> tuple[dict[str, Path], list[str]]:
    """The official files from the environment or the ComfyUI's models/ folders, and what is missing."""
    found, missing = {}, []
    for key, (env, folders, names) in OFFICIAL.items():
        value = os.environ.get(env, "").strip()
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise SystemExit(f"{env}={value} is not a file")
            found[key] = path.resolve()
            continue
        candidates = [root / "models" / folder / name for name in names for folder in folders]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(f"{env} ({names[0]} in models/{folders[0]}/)")
        else:
            found[key] = path.resolve()
    return found, missing


def write_tiny_models(server: comfy_server.ComfyServer) -> dict[str, str]:
    """A tiny random checkpoint (transformer + VAE), upsampler and T5 in the server's model folders."""
    from support import tiny, tiny_t5

    try:  # the reference package (used to build the tiny model) warns about a config key it ignores
        import diffusers.utils.logging

        diffusers.utils.logging.set_verbosity_error()
    except ImportError:
        pass
    tconfig = tiny.transformer_config(num_layers=TINY_LAYERS)
    vconfig, uconfig = tiny.vae_config(), tiny.upsampler_config()
    names = {"checkpoint": "ltxv097_demo_tiny_random.safetensors",
             "upsampler": "ltxv097_demo_tiny_random_upsampler.safetensors", "t5": tiny_t5.FILE_NAME}
    tiny.save_single_file(server.model_path("checkpoints", names["checkpoint"]),
                          transformer=tiny.reference_transformer(tconfig), transformer_config_=tconfig,
                          vae=tiny.reference_vae(vconfig), vae_config_=vconfig)
    tiny.save_upsampler(server.model_path("latent_upscale_models", names["upsampler"]),
                        tiny.reference_upsampler(uconfig), uconfig)
    tiny_t5.write_tiny_t5(server.model_path("text_encoders", names["t5"]))
    tiny_t5.install_test_nodes(server.workdir / "custom_nodes")
    return names


def link_models(server: comfy_server.ComfyServer, found: dict[str, Path]) -> dict[str, str]:
    """Link the given files into the server's model folders (under their own names)."""
    names = {}
    for key, path in found.items():
        target = server.model_path(FOLDER_FOR[key], path.name)
        if not target.exists():
            target.symlink_to(path)
        names[key] = path.name
    return names


CHECKER = Path("safety_checker") / "nsfw_image_detection"


def link_checker(server: comfy_server.ComfyServer, root: Path, tiny_mode: bool) -> bool:
    """Link the safety checker's folder (SAFETY_CHECKER= or models/safety_checker/nsfw_image_detection/) into the
    server; False (and the checker is turned off, saying so) when there is none or in the tiny demo."""
    if tiny_mode:
        log("Safety checker: OFF in the tiny demo (enable_safety_checker=false): a random picture has nothing to "
            "check and no checker model is downloaded.")
        return False
    source = Path(os.environ.get("SAFETY_CHECKER", "") or root / "models" / CHECKER).expanduser()
    if not (source / "config.json").is_file():
        log(f"Safety checker: OFF (enable_safety_checker=false): no checker model in {source}; put "
            "Falconsai/nsfw_image_detection's config.json, preprocessor_config.json and model.safetensors there "
            "(or set SAFETY_CHECKER=folder) to render with it on, as the hosted service does.")
        return False
    target = server.models_dir / CHECKER
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve(), target_is_directory=True)
    log(f"Safety checker: on ({source})")
    return True


def build_prompt(info: dict, names: dict[str, str], tiny_mode: bool, args) -> dict:
    workflow = json.loads(WORKFLOW.read_text())
    if tiny_mode:
        prompt = e2e_workflows.tiny_prompt(workflow, info, names)  # tiny models, STG on a block they have
        prompt = workflow_api.set_inputs(prompt, NODE, number_of_frames=TINY_FRAMES)
    else:
        prompt = workflow_api.to_api(workflow, info)
        prompt = workflow_api.set_inputs(prompt, "LTX097ModelLoader", ckpt_name=names["checkpoint"])
        prompt = workflow_api.set_inputs(prompt, "LTX097UpsamplerLoader", upscale_model_name=names["upsampler"])
        prompt = workflow_api.set_inputs(prompt, "CLIPLoader", clip_name=names["t5"])
        if "distilled" in names["checkpoint"]:
            prompt = workflow_api.set_inputs(prompt, NODE, recipe="0.9.7 distilled multi-scale")
    changes = {"prompt": args.prompt, "resolution": args.resolution, "aspect_ratio": args.aspect_ratio,
               "number_of_frames": args.frames, "number_of_steps": args.steps, "seed": args.seed,
               "recipe": args.recipe, "filename_prefix": "ltxv097_demo/demo",
               "enable_safety_checker": args.safety_checker}
    return workflow_api.set_inputs(prompt, NODE, **{k: v for k, v in changes.items() if v is not None})


def render(server: comfy_server.ComfyServer, prompt: dict, timeout: float) -> Path:
    prompt_id = server.post_prompt(prompt)
    started = last = time.monotonic()
    while True:
        entry = server.history(prompt_id)
        if entry is not None and entry.get("status", {}).get("completed") is not None:
            break
        if not server.running:
            raise SystemExit(f"ComfyUI stopped while rendering; log tail:\n{server.log_tail()}")
        if time.monotonic() - started > timeout:
            server.interrupt()
            raise SystemExit(f"the render took longer than {timeout:.0f} s; stopped it")
        if time.monotonic() - last > 30:
            last = time.monotonic()
            log(f"  ... still rendering ({last - started:.0f} s)")
        time.sleep(0.5)
    if entry["status"].get("status_str") != "success":
        error = server.execution_error(entry) or {}
        raise SystemExit(f"the render failed in {error.get('node_type')}: {error.get('exception_message')}\n"
                         f"(ComfyUI log: {server.log_path})")
    (video,) = e2e_workflows.saved_videos(entry)
    log(f"rendered in {time.monotonic() - started:.1f} s")
    return server.output_dir / video["subfolder"] / video["filename"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--prompt", help="the prompt (default: the workflow's)")
    parser.add_argument("--resolution", choices=["480p", "720p"])
    parser.add_argument("--aspect-ratio", choices=["16:9", "1:1", "9:16"])
    parser.add_argument("--frames", type=int, help="number of frames, 1-2049")
    parser.add_argument("--steps", type=int, help="denoising steps (dev recipe)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--recipe", help="e.g. '0.9.7 dev multi-scale' or '0.9.7 distilled multi-scale'")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random model even if weights are found")
    parser.add_argument("--comfy-args", default="", help="extra arguments for ComfyUI's main.py, e.g. --lowvram")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="give up after this many seconds")
    args = parser.parse_args(argv)

    root = comfy_server.comfy_root()
    found, missing = ({}, ["--tiny"]) if args.tiny else find_models(root)
    tiny_mode = bool(missing)
    if tiny_mode:
        log("No official LTX-Video weights: " + ", ".join(missing) + " not found.")
        log("Rendering with a TINY RANDOM model and a tiny random T5 on the CPU instead: the video is a meaningless "
            "texture,\nnot a real generation; it shows the whole path (workflow -> ComfyUI -> mp4) works.")
    else:
        log("Rendering with " + ", ".join(str(p) for p in found.values()))
    with tempfile.TemporaryDirectory(prefix="ltxv097-demo-") as folder:
        server = comfy_server.ComfyServer(Path(folder) / "host", cpu=tiny_mode, extra_args=args.comfy_args.split())
        names = write_tiny_models(server) if tiny_mode else link_models(server, found)
        args.safety_checker = link_checker(server, root, tiny_mode)
        log(f"starting ComfyUI ({root}) ...")
        with server:
            prompt = build_prompt(server.object_info(), names, tiny_mode, args)
            inputs = prompt[workflow_api.nodes_of(prompt, NODE)[0]]["inputs"]
            log(f"queued {WORKFLOW.name}: {inputs['resolution']} {inputs['aspect_ratio']}, "
                f"{inputs['number_of_frames']} frames, recipe '{inputs['recipe']}', seed {inputs['seed']}")
            video = render(server, prompt, args.timeout)
            OUTPUT_DIR.mkdir(exist_ok=True)
            stem = ("tiny_random_" if tiny_mode else "") + "ltxv097_demo"
            number = 1 + max((int(p.stem.rsplit("_", 1)[1]) for p in OUTPUT_DIR.glob(f"{stem}_*.mp4")
                              if p.stem.rsplit("_", 1)[1].isdigit()), default=0)
            target = OUTPUT_DIR / f"{stem}_{number:05}.mp4"
            shutil.copy(video, target)
    if tiny_mode:
        log("(tiny random model: the picture is meaningless by design; set CHECKPOINT, T5 and UPSAMPLER to render)")
    print(target)


if __name__ == "__main__":
    main()
