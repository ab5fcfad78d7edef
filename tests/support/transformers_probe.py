"""Run in a subprocess with another transformers release first on PYTHONPATH (see test_transformers_releases.py):
loads the tiny helper models from the folders given and prints what the prompt enhancer and safety checker do,
as JSON. Models are written by the venv's transformers, as real ones were saved by older releases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers

from assistants import enhancer, safety
from assistants.prompts import plan_enhancement


class ImageAtFrame0:
    media = torch.rand(1, 48, 64, 3, generator=torch.Generator().manual_seed(0))
    start_frame = 0


def main(root: Path) -> None:
    text_model = enhancer.load_text_model(root / "LLM" / "tiny-qwen2-instruct", torch.float32)
    captioner = enhancer.load_captioner(root / "LLM" / "tiny-blip-captioner", torch.float32)
    words = lambda text: len(text.split())  # noqa: E731 - a token counter, enough here
    run = lambda conditions, **kw: enhancer.expand(  # noqa: E731
        plan_enhancement("a cat on a sofa", conditions), "a cat on a sofa", text_model=text_model,
        captioner=captioner, count_tokens=words, max_new_tokens=12, **kw)
    t2v, i2v = run(None), run([ImageAtFrame0])
    frames = torch.rand(4, 40, 56, 3)
    scores = {name: safety.unsafe_scores(safety.load_classifier(root / "safety_checker" / name, torch.float32),
                                         frames).tolist()
              for name in ("nsfw_image_detection", "tiny-nsfw-flags-everything")}
    print(json.dumps({"version": transformers.__version__, "transformers_file": transformers.__file__,
                      "t2v": t2v.prompt, "t2v_again": run(None).prompt, "t2v_sampled": run(None, temperature=1.0,
                                                                                          seed=3).prompt,
                      "i2v_mode": i2v.plan.mode, "caption": i2v.caption, "i2v": i2v.prompt, "scores": scores}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
