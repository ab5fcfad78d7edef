"""The safety checker: an image classifier (e.g. Falconsai/nsfw_image_detection, a ViT) scores frames, and the
frames whose score for the model's unsafe labels reaches a threshold are flagged.

A video is checked on a sample of its frames spread over it (first and last included); each frame takes the
verdict of the nearest checked frame, so blacking out covers the neighbourhood of a flagged sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import hf
from .images import PREPROCESSOR_FILE, image_config, pixel_values

CLASSIFIER_FILES = ("config.json", PREPROCESSOR_FILE)
UNSAFE_LABELS = ("nsfw", "porn", "hentai", "sexy", "explicit", "unsafe", "nude", "nudity")
"""Label names (case-insensitive) counted as unsafe; the model's other labels (normal, neutral, drawings, ...)
are safe."""
BATCH = 8


FLAGGED = "The content was flagged by a content checker"
"""How every flagged-content message starts: the hosted service's words, which the HTTP API recognises."""


class ContentFlagged(ValueError):
    """Content was flagged; the message says what, with which score (the service's `content_policy_violation`)."""


@dataclass
class Classifier:
    model: torch.nn.Module
    image_config: dict
    unsafe_ids: tuple[int, ...]
    unsafe_names: tuple[str, ...]
    folder: Path


@dataclass(frozen=True)
class FrameVerdict:
    frame: int
    score: float
    flagged: bool


def verdict(frame: int, score: float, threshold: float) -> FrameVerdict:
    """A frame's verdict: flagged when its score reaches the threshold (the threshold itself flags)."""
    return FrameVerdict(frame, float(score), float(score) >= threshold)


def load_classifier(folder: Path, dtype: torch.dtype) -> Classifier:
    from transformers import AutoModelForImageClassification

    config = hf.load_config(folder, what="the safety checker")
    labels = {int(k): str(v) for k, v in config.id2label.items()}
    unsafe = tuple(i for i, name in sorted(labels.items()) if name.lower() in UNSAFE_LABELS)
    if not unsafe:
        raise ValueError(f"the safety checker in {folder} has the labels {sorted(labels.values())}, none of which "
                         f"is an unsafe label ({', '.join(UNSAFE_LABELS)}); use an NSFW image classifier")
    model = hf.from_pretrained(AutoModelForImageClassification, folder, dtype)
    return Classifier(model, image_config(folder), unsafe, tuple(labels[i] for i in unsafe), folder)


def sample_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `total` frames, first and last included (all if count ≤ 0)."""
    if count <= 0 or count >= total:
        return list(range(total))
    if count == 1:
        return [0]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def unsafe_scores(classifier: Classifier, frames: torch.Tensor) -> torch.Tensor:
    """Probability of the unsafe labels (summed) for each `[H, W, 3]` frame of `[N, H, W, 3]`, as float32 [N]."""
    parameter = next(classifier.model.parameters())
    scores = []
    with torch.inference_mode():
        for start in range(0, frames.shape[0], BATCH):
            pixels = pixel_values(frames[start:start + BATCH], classifier.image_config, device=parameter.device,
                                  dtype=parameter.dtype)
            logits = classifier.model(pixel_values=pixels).logits.float()
            scores.append(logits.softmax(-1)[:, list(classifier.unsafe_ids)].sum(-1).cpu())
    return torch.cat(scores)


def check_frames(classifier: Classifier, frames: torch.Tensor, *, threshold: float, sample: int
                 ) -> list[FrameVerdict]:
    """Verdicts for the sampled frames of `frames` `[F, H, W, 3]` (see `sample_indices`)."""
    indices = sample_indices(frames.shape[0], sample)
    scores = unsafe_scores(classifier, frames[indices])
    return [verdict(i, s, threshold) for i, s in zip(indices, scores.tolist())]


def frame_flags(total: int, verdicts: list[FrameVerdict]) -> torch.Tensor:
    """A bool flag per frame: each frame takes the verdict of the nearest checked frame (flagged on a tie)."""
    checked = torch.tensor([v.frame for v in verdicts], dtype=torch.float32)
    flags = torch.tensor([v.flagged for v in verdicts])
    distance = (torch.arange(total, dtype=torch.float32)[:, None] - checked[None]).abs()
    nearest = distance == distance.min(dim=1, keepdim=True).values
    return (nearest & flags[None]).any(dim=1)


def black_out(frames: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """`frames` with the flagged ones set to black (a new tensor; unflagged frames are the same values)."""
    result = frames.clone()
    result[flags.to(frames.device)] = 0
    return result


def describe(verdicts: list[FrameVerdict], what: str, classifier: Classifier, threshold: float) -> str:
    """The sentence for flagged content: which frames of what, their scores, the labels and threshold."""
    flagged = [v for v in verdicts if v.flagged]
    frames = ", ".join(f"frame {v.frame} (score {v.score:.3f})" for v in flagged[:8])
    more = f" and {len(flagged) - 8} more" if len(flagged) > 8 else ""
    return (f"{FLAGGED} (content_policy_violation): the safety checker ({classifier.folder.name}) flagged {what}: "
            f"{frames}{more}; score = probability of {'/'.join(classifier.unsafe_names)}, threshold {threshold}")
