"""Safety checker nodes: a loader for the image classifier (models/safety_checker/) with its policy, and a node
that checks any IMAGE batch. The one-node Text to Video uses the same functions (the hosted service's
`enable_safety_checker`). The classification itself is in `assistants/safety.py`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..assistants import catalog, safety
from .assistant_models import (
    ModelKind,
    folder_choices,
    load_for_use,
    managed,
    missing_folder,
    register_folder,
    resolve_dtype,
)
from .inputs import CATEGORY, download_input, dtype_input
from .sockets import LTXSafetyCheckerType

logger = logging.getLogger(__name__)

CHECKER_FOLDER = "safety_checker"
DEFAULT_CHECKER = "nsfw_image_detection"
CHECKERS = ModelKind(CHECKER_FOLDER, safety.CLASSIFIER_FILES, "safety checker",
                     "https://huggingface.co/Falconsai/nsfw_image_detection (Apache-2.0)", catalog.CHECKERS)
ON_FLAGGED = ("stop", "black out")
DEFAULT_THRESHOLD = 0.5
VIDEO_SAMPLE = 9
"""Frames of a generated video (and of each conditioning video) the one-node path checks, first and last
included."""
WORKING_BYTES = 256 << 20

register_folder(CHECKER_FOLDER)


@dataclass
class SafetyChecker:
    """`LTX097_SAFETY_CHECKER`: the classifier (its ModelPatcher and metadata) and what to do with flagged frames."""

    patcher: Any
    classifier: safety.Classifier
    threshold: float
    on_flagged: str

    def loaded(self) -> safety.Classifier:
        """The classifier with its module loaded for use by ComfyUI."""
        load_for_use(self.patcher, WORKING_BYTES)
        return self.classifier


def load_checker(name: str, threshold: float = DEFAULT_THRESHOLD, on_flagged: str = "stop",
                 dtype: str = "fp32", download: bool = False) -> SafetyChecker:
    if on_flagged not in ON_FLAGGED:
        raise ValueError(f"on_flagged '{on_flagged}' is not one of {', '.join(ON_FLAGGED)}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} is out of range (above 0, at most 1)")
    folder = CHECKERS.locate(name, download)
    classifier = safety.load_classifier(folder, resolve_dtype(dtype, mm.text_encoder_device()))
    return SafetyChecker(managed(classifier.model), classifier, float(threshold), on_flagged)


def default_checker() -> SafetyChecker:
    """The one-node path's checker when none is connected: models/safety_checker/nsfw_image_detection/."""
    return CHECKERS.default(DEFAULT_CHECKER, lambda: load_checker(DEFAULT_CHECKER))


def missing_default_checker() -> str | None:
    """The default checker's folder relative to models/ when it is not installed (None when it is)."""
    return missing_folder(CHECKER_FOLDER, DEFAULT_CHECKER, safety.CLASSIFIER_FILES)


def check_batch(checker: SafetyChecker, frames: torch.Tensor, what: str, sample: int
                ) -> tuple[torch.Tensor, list[safety.FrameVerdict]]:
    """Check `frames` `[F, H, W, 3]`: raises `ContentFlagged` (policy "stop") or returns them with the flagged
    ones blacked out (policy "black out"), plus the verdicts of the checked frames."""
    classifier = checker.loaded()
    verdicts = safety.check_frames(classifier, frames, threshold=checker.threshold, sample=sample)
    if not any(v.flagged for v in verdicts):
        return frames, verdicts
    message = safety.describe(verdicts, what, classifier, checker.threshold)
    if checker.on_flagged == "stop":
        raise safety.ContentFlagged(message)
    logger.warning("%s: flagged frames blacked out", message)
    return safety.black_out(frames, safety.frame_flags(frames.shape[0], verdicts)), verdicts


def check_conditions(checker: SafetyChecker, conditions: Sequence | None = None) -> None:
    """The conditioning media of a generation, each checked like a video."""
    for index, item in enumerate(conditions or ()):
        label = getattr(item, "label", f"condition {index + 1}")
        check_batch(checker, item.media, f"the conditioning media ({label})", VIDEO_SAMPLE)


def check_generation(checker: SafetyChecker, frames: torch.Tensor, conditions: Sequence | None = None
                     ) -> torch.Tensor:
    """The one-node path: the conditioning media, then a sample of the generated frames."""
    check_conditions(checker, conditions)
    checked, _ = check_batch(checker, frames, "the generated video", VIDEO_SAMPLE)
    return checked


def checked_stream(checker: SafetyChecker, chunks: Iterable[torch.Tensor], total: int) -> Iterator[torch.Tensor]:
    """Frames as they are decoded, passed on unchanged while the sampled ones (the same as `check_generation`
    picks) are checked on the way; a flagged one raises `ContentFlagged`, so a streaming mp4 writer keeps nothing.

    Only for the "stop" policy: blacking out needs the verdicts of later frames before a frame is written.
    """
    if checker.on_flagged != "stop":
        raise ValueError(f"a streamed check stops on flagged content; on_flagged='{checker.on_flagged}' needs the "
                         f"whole video")
    classifier = checker.loaded()
    pending, start, verdicts = safety.sample_indices(total, VIDEO_SAMPLE), 0, []
    for chunk in chunks:
        picked = [i for i in pending if start <= i < start + chunk.shape[0]]
        if picked:
            scores = safety.unsafe_scores(classifier, chunk[[i - start for i in picked]])
            verdicts += [safety.verdict(i, v, checker.threshold) for i, v in zip(picked, scores.tolist())]
            if any(v.flagged for v in verdicts):
                raise safety.ContentFlagged(safety.describe(verdicts, "the generated video", classifier,
                                                            checker.threshold))
        start += chunk.shape[0]
        yield chunk


class LTX097SafetyCheckerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = folder_choices(CHECKER_FOLDER, catalog.CHECKERS)
        return io.Schema(
            node_id="LTX097SafetyCheckerLoader",
            display_name="LTX-Video 0.9.7 Safety Checker Loader",
            category=f"{CATEGORY}/loaders",
            description=(
                "Loads an NSFW image classifier from models/safety_checker/ (a Hugging Face model folder, e.g. "
                "Falconsai/nsfw_image_detection, Apache-2.0) with what to do when it flags a frame: stop with an "
                "error (as the hosted service answers content_policy_violation) or black the frames out."
            ),
            inputs=[
                io.Combo.Input("model", options=names, default=DEFAULT_CHECKER,
                               tooltip="The classifier's folder in models/safety_checker/ (config.json, "
                                       "preprocessor_config.json, model.safetensors)."),
                io.Float.Input("threshold", default=DEFAULT_THRESHOLD, min=0.01, max=1.0, step=0.01,
                               tooltip="A frame is flagged when the classifier's probability for its unsafe "
                                       "labels (nsfw, porn, hentai, sexy, ...) reaches this."),
                io.Combo.Input("on_flagged", options=list(ON_FLAGGED), default="stop",
                               tooltip="stop: the run fails with an error naming the frames and scores, nothing "
                                       "is saved; black out: flagged frames (and their neighbours up to the next "
                                       "checked frame) become black."),
                dtype_input("fp32", "Weight dtype (the classifier is small; fp32 is the reference)."),
                download_input("Download the missing files of nsfw_image_detection (Falconsai/nsfw_image_detection, "
                               "Apache-2.0, 343 MB) into models/safety_checker/. Off: nothing is downloaded."),
            ],
            outputs=[LTXSafetyCheckerType.Output(display_name="safety_checker",
                                                 tooltip="For the Safety Check node or the one-node Text to "
                                                         "Video.")],
        )

    @classmethod
    def execute(cls, model: str, threshold: float = DEFAULT_THRESHOLD, on_flagged: str = "stop",
                dtype: str = "fp32", download: bool = False) -> io.NodeOutput:
        return io.NodeOutput(load_checker(model, threshold, on_flagged, dtype, download))


class LTX097SafetyCheck(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097SafetyCheck",
            display_name="LTX-Video 0.9.7 Safety Check",
            category=CATEGORY,
            description=(
                "Checks an IMAGE batch (any video's frames) with the safety checker: stops with an error or "
                "blacks out flagged frames, per the loader's policy. Outputs the frames, whether any was flagged "
                "and each checked frame's score."
            ),
            inputs=[
                LTXSafetyCheckerType.Input("safety_checker", tooltip="The classifier (Safety Checker Loader)."),
                io.Image.Input("images", tooltip="The frames to check [frames, height, width, channels]."),
                io.Int.Input("frames_to_check", default=0, min=0, max=4096,
                             tooltip="0 checks every frame; N checks N frames spread over the batch, first and "
                                     "last included (each unchecked frame follows the nearest checked one)."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The frames (flagged ones black with 'black "
                                                                    "out')."),
                     io.Boolean.Output(display_name="flagged", tooltip="True when any checked frame was flagged."),
                     io.String.Output(display_name="scores",
                                      tooltip='JSON list of {"frame", "score", "flagged"} for the checked frames.')],
        )

    @classmethod
    def execute(cls, safety_checker: SafetyChecker, images: torch.Tensor, frames_to_check: int = 0
                ) -> io.NodeOutput:
        frames = images[..., :3]
        checked, verdicts = check_batch(safety_checker, frames, "the images", frames_to_check)
        if checked is not frames and images.shape[-1] > 3:
            checked = torch.cat([checked, images[..., 3:]], dim=-1)
        elif checked is frames:
            checked = images
        report = json.dumps([{"frame": v.frame, "score": round(v.score, 6), "flagged": v.flagged} for v in verdicts])
        return io.NodeOutput(checked, any(v.flagged for v in verdicts), report)


NODES = [LTX097SafetyCheckerLoader, LTX097SafetyCheck]
