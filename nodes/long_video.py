"""Long videos: the window settings node and socket, and the "window k of n" progress text.

Videos longer than one window are sampled in overlapping windows (`ltx_core.windows`); these settings say how
long a window is, how much of it continues the previous one, and how strongly later windows keep the first one's
colours. Without the node the defaults apply (121 frames, 24 frames of overlap, AdaIN 0.5).
"""

from __future__ import annotations

from comfy_api.latest import io

from ..ltx_core.windows import (
    DEFAULT_OVERLAP_FRAMES,
    DEFAULT_TEMPORAL_ADAIN_FACTOR,
    DEFAULT_WINDOW_FRAMES,
    MIN_WINDOW_FRAMES,
    check_window_settings,
)
from .inputs import CATEGORY, answer
from .progress import show_text
from .ranges import MAX_WINDOW_FRAMES
from .sockets import LTXWindowsType


def window_settings(windows: dict | None, num_frames: int) -> dict:
    """The `sample_long_video` window arguments from a Long Video Settings dict (None: the defaults).

    Without settings, a video the model can make in one go (up to its trained 257 frames) stays one window, as the
    official pipeline makes it; longer ones get the default windows.
    """
    settings = {"window_frames": DEFAULT_WINDOW_FRAMES, "overlap_frames": DEFAULT_OVERLAP_FRAMES,
                "temporal_adain_factor": DEFAULT_TEMPORAL_ADAIN_FACTOR}
    if windows is None:
        if num_frames <= MAX_WINDOW_FRAMES:
            settings["window_frames"] = MAX_WINDOW_FRAMES
        return settings
    if not isinstance(windows, dict) or set(windows) - set(settings):
        raise ValueError(f"windows={windows!r} is not allowed (allowed: the output of LTX-Video 0.9.7 Long Video "
                         f"Settings, a dict with {', '.join(settings)})")
    settings.update(windows)
    return settings


def output_connected(cls, slot: int) -> bool:
    """Whether another node of the queued prompt reads output `slot` of this node (True when unknown)."""
    hidden = getattr(cls, "hidden", None)
    prompt, node_id = getattr(hidden, "prompt", None), getattr(hidden, "unique_id", None)
    if not isinstance(prompt, dict) or node_id is None:
        return True
    for node in prompt.values():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        if any(isinstance(v, list) and len(v) == 2 and str(v[0]) == str(node_id) and v[1] == slot
               for v in inputs.values()):
            return True
    return False


class WindowProgress:
    """ltx_core's `on_window(index, count)`: "window k of n" under the node (and in the log)."""

    def __init__(self, node_id: str | None = None):
        self.node_id = node_id

    def __call__(self, index: int, count: int) -> None:
        if count < 2:
            return
        show_text(f"window {index + 1} of {count}", self.node_id)


class LTX097LongVideoSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097LongVideoSettings",
            display_name="LTX-Video 0.9.7 Long Video Settings",
            category=f"{CATEGORY}/sampling",
            description=(
                "Settings for videos longer than one window (Sampler, Text to Video, Extend Video): the video is "
                "generated window by window, each window continuing the last overlap frames of the one before, "
                "with the recipe's passes in every window. Costs about one window's time per window; memory stays "
                "that of one window."
            ),
            inputs=[
                io.Int.Input("window_frames", default=DEFAULT_WINDOW_FRAMES, min=MIN_WINDOW_FRAMES,
                             max=MAX_WINDOW_FRAMES, step=8,
                             tooltip="Frames per window, 8k+1 (9–257). The model was trained on up to 257; 121 "
                                     "keeps each window fast and coherent. A video this long or shorter is one "
                                     "window."),
                io.Int.Input("overlap_frames", default=DEFAULT_OVERLAP_FRAMES, min=8, max=MAX_WINDOW_FRAMES - 1,
                             step=8,
                             tooltip="Frames each window shares with the previous one (a multiple of 8, smaller "
                                     "than the window): the new window continues them, and they are cross-faded "
                                     "so there is no seam. More overlap: smoother motion, more windows."),
                io.Float.Input("temporal_adain_factor", default=DEFAULT_TEMPORAL_ADAIN_FACTOR, min=0.0, max=1.0,
                               step=0.05,
                               tooltip="How strongly each later window is matched to the first window's colour "
                                       "statistics (AdaIN): against the drift in colour and contrast over long "
                                       "videos. 0 = off, 1 = exactly the first window's."),
            ],
            outputs=[LTXWindowsType.Output(display_name="windows",
                                           tooltip="The settings, for the windows input of the Sampler, Text to "
                                                   "Video or Extend Video.")],
        )

    @classmethod
    def validate_inputs(cls, window_frames: int = DEFAULT_WINDOW_FRAMES,
                        overlap_frames: int = DEFAULT_OVERLAP_FRAMES) -> bool | str:
        return answer(check_window_settings, window_frames, overlap_frames)

    @classmethod
    def execute(cls, window_frames: int = DEFAULT_WINDOW_FRAMES, overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
                temporal_adain_factor: float = DEFAULT_TEMPORAL_ADAIN_FACTOR) -> io.NodeOutput:
        check_window_settings(window_frames, overlap_frames)
        return io.NodeOutput({"window_frames": window_frames, "overlap_frames": overlap_frames,
                              "temporal_adain_factor": float(temporal_adain_factor)})


NODES = [LTX097LongVideoSettings]
