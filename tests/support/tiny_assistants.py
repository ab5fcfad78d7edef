"""Tiny random prompt-enhancer and safety-checker models in Hugging Face layout, built from `transformers`
configs (no downloads): an instruct LLM (Qwen2 with the host's Qwen2.5 tokenizer and its chat template), a BLIP
captioner and a ViT NSFW classifier whose verdict is set by its bias."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LLM_NAME = "tiny-qwen2-instruct"
CAPTIONER_NAME = "tiny-blip-captioner"
CHECKER_SAFE = "nsfw_image_detection"          # the one-node default folder name
CHECKER_FLAGGING = "tiny-nsfw-flags-everything"
CAPTION_WORDS = ["a", "cat", "dog", "red", "car", "on", "the", "street", "sitting", "sofa", "beach", "sunset"]
IMAGE_SIZE = 32


def _comfy_tokenizer_dir(name: str) -> Path:
    from support.comfy_server import comfy_root

    return comfy_root() / "comfy" / "text_encoders" / name


def write_llm(folder: Path, seed: int = 0, max_shard_size: str = "5GB") -> Path:
    """A 2-layer Qwen2 causal LM whose special tokens never win (so greedy decoding writes words); a small
    `max_shard_size` writes it sharded with a `model.safetensors.index.json`."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(_comfy_tokenizer_dir("qwen25_tokenizer")))
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         tie_word_embeddings=False, use_sliding_window=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        special = sorted(tokenizer.all_special_ids + list(tokenizer.added_tokens_decoder))
        model.lm_head.weight[special] = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(str(folder))
    return folder


def write_captioner(folder: Path, seed: int = 0) -> Path:
    """A 1-layer BLIP captioner with a 12-word BERT vocabulary."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *CAPTION_WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "encoder_hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 64, "bos_token_id": 5, "eos_token_id": 3, "sep_token_id": 3,
                     "pad_token_id": 0},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": IMAGE_SIZE, "patch_size": 8},
        projection_dim=32)
    BlipForConditionalGeneration(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    _write_preprocessor(folder, "BlipImageProcessor", resample=3)
    return folder


def write_classifier(folder: Path, flags: bool = False, seed: int = 0) -> Path:
    """A 1-layer ViT with labels normal / nsfw whose bias decides: nsfw ≈ 0.998 if `flags`, else ≈ 0.002."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       image_size=IMAGE_SIZE, patch_size=8, id2label={0: "normal", 1: "nsfw"},
                       label2id={"normal": 0, "nsfw": 1})
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(0.01)
        model.classifier.bias.copy_(torch.tensor([-3.0, 3.0] if flags else [3.0, -3.0]))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    _write_preprocessor(folder, "ViTImageProcessor", resample=2)
    return folder


def _write_preprocessor(folder: Path, processor: str, resample: int) -> None:
    config = {"image_processor_type": processor, "do_resize": True, "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
              "resample": resample, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def write_all(models_dir: Path) -> dict[str, str]:
    """Every tiny helper model in its ComfyUI folder: models/LLM/ (LLM, captioner) and models/safety_checker/."""
    write_llm(models_dir / "LLM" / LLM_NAME)
    write_captioner(models_dir / "LLM" / CAPTIONER_NAME)
    write_classifier(models_dir / "safety_checker" / CHECKER_SAFE, flags=False)
    write_classifier(models_dir / "safety_checker" / CHECKER_FLAGGING, flags=True)
    return {"llm": LLM_NAME, "captioner": CAPTIONER_NAME, "checker": CHECKER_SAFE, "checker_flags": CHECKER_FLAGGING}
