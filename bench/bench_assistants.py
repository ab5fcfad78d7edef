#!/usr/bin/env python
"""Time the helper models of `expand_prompt` and `enable_safety_checker`: the safety checker's cost per checked
frame, and the prompt enhancer's load and generate times (text-to-video and image-to-video).

By default on tiny random models built from `transformers` configs (no downloads; the numbers show the overhead
of the code path, not of the real models). With `--llm`, `--captioner` and `--checker` folders (Hugging Face
layout, as in models/LLM/ and models/safety_checker/) it times the real models, e.g. on a GPU:

    .venv/bin/python bench/bench_assistants.py                                  # tiny models, CPU
    .venv/bin/python bench/bench_assistants.py --device cuda --dtype bf16 \\
        --llm ~/ComfyUI/models/LLM/Llama-3.2-3B-Instruct --captioner ~/ComfyUI/models/LLM/blip-image-captioning-large \\
        --checker ~/ComfyUI/models/safety_checker/nsfw_image_detection --json assistants.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from assistants import enhancer, safety  # noqa: E402  (after the path set-up)
from assistants.prompts import plan_enhancement  # noqa: E402

logger = logging.getLogger("bench_assistants")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PROMPT = "A red fox trots through fresh snow at dawn"


def timed(function: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, object]:
    """Median seconds of `repeats` calls (after one warm-up call) and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def tiny_folders(root: Path) -> dict[str, Path]:
    from support import tiny_assistants

    return {"llm": tiny_assistants.write_llm(root / "llm"), "captioner": tiny_assistants.write_captioner(root / "cap"),
            "checker": tiny_assistants.write_classifier(root / "checker")}


def t5_counter() -> Callable[[str], int]:
    from transformers import AutoTokenizer

    from support import comfy_server

    tokenizer = AutoTokenizer.from_pretrained(str(comfy_server.comfy_root() / "comfy" / "text_encoders" /
                                                  "t5_tokenizer"))
    return lambda text: len(tokenizer(text).input_ids)


def bench_checker(folder: Path, device: torch.device, dtype: torch.dtype, frames: int, size: tuple[int, int],
                  repeats: int) -> dict:
    start = time.perf_counter()
    classifier = safety.load_classifier(folder, dtype)
    classifier.model.to(device)
    load_s = time.perf_counter() - start
    video = torch.rand(frames, *size, 3, device=device)
    seconds, _ = timed(lambda: safety.check_frames(classifier, video, threshold=0.5, sample=0), device, repeats)
    return {"load_s": load_s, "frames": frames, "frame_size": list(size), "ms_per_frame": 1000 * seconds / frames}


def bench_enhancer(folders: dict[str, Path], device: torch.device, dtype: torch.dtype, max_new_tokens: int,
                   repeats: int) -> dict:
    start = time.perf_counter()
    text_model = enhancer.load_text_model(folders["llm"], dtype)
    text_model.model.to(device)
    llm_load_s = time.perf_counter() - start
    start = time.perf_counter()
    captioner = enhancer.load_captioner(folders["captioner"], dtype)
    captioner.model.to(device)
    captioner_load_s = time.perf_counter() - start
    count = t5_counter()
    image = torch.rand(1, 480, 848, 3)

    class Image:  # an image condition at frame 0
        media, start_frame = image, 0

    rows = {"llm_load_s": llm_load_s, "captioner_load_s": captioner_load_s, "max_new_tokens": max_new_tokens}
    for mode, conditions in (("t2v", None), ("i2v", [Image])):
        plan = plan_enhancement(PROMPT, conditions)
        seconds, result = timed(lambda plan=plan: enhancer.expand(plan, PROMPT, text_model=text_model,
                                                                  captioner=captioner, count_tokens=count,
                                                                  max_new_tokens=max_new_tokens),
                                device, repeats)
        rows[f"{mode}_generate_s"] = seconds
        rows[f"{mode}_t5_tokens"] = count(result.prompt)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--llm", type=Path, help="LLM folder (default: a tiny random one)")
    parser.add_argument("--captioner", type=Path, help="BLIP captioner folder (default: a tiny random one)")
    parser.add_argument("--checker", type=Path, help="safety checker folder (default: a tiny random one)")
    parser.add_argument("--frames", type=int, default=9, help="frames checked per call (the one-node path: 9)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    with tempfile.TemporaryDirectory(prefix="ltxv097-bench-assistants-") as folder:
        folders = tiny_folders(Path(folder)) if not (args.llm and args.captioner and args.checker) else {}
        folders.update({k: v for k, v in (("llm", args.llm), ("captioner", args.captioner),
                                          ("checker", args.checker)) if v is not None})
        results = {"device": args.device, "dtype": args.dtype, "platform": platform.platform(),
                   "torch": torch.__version__, "models": {k: str(v) for k, v in folders.items()},
                   "checker": bench_checker(folders["checker"], device, dtype, args.frames, (480, 848),
                                            args.repeats),
                   "enhancer": bench_enhancer(folders, device, dtype, args.max_new_tokens, args.repeats)}
    import transformers

    results["transformers"] = transformers.__version__
    logger.info(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
