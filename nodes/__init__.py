"""The pack's ComfyUI nodes (V3 schema). Imported only inside ComfyUI; see the pack's `__init__`."""

from .conditioning import NODES as CONDITIONING_NODES
from .decode import NODES as DECODE_NODES
from .enhancer import NODES as ENHANCER_NODES
from .extend import NODES as EXTEND_NODES
from .guidance import NODES as GUIDANCE_NODES
from .loaders import NODES as LOADER_NODES
from .long_video import NODES as LONG_VIDEO_NODES
from .lora import NODES as LORA_NODES
from .safety import NODES as SAFETY_NODES
from .sampling import NODES as SAMPLING_NODES
from .text import NODES as TEXT_NODES
from .text_to_video import NODES as TEXT_TO_VIDEO_NODES
from .upsample import NODES as UPSAMPLE_NODES
from .video import NODES as VIDEO_NODES

NODE_LIST = [*LOADER_NODES, *TEXT_NODES, *CONDITIONING_NODES, *GUIDANCE_NODES, *SAMPLING_NODES, *UPSAMPLE_NODES,
             *LONG_VIDEO_NODES, *EXTEND_NODES, *DECODE_NODES, *VIDEO_NODES, *TEXT_TO_VIDEO_NODES, *LORA_NODES, *ENHANCER_NODES,
             *SAFETY_NODES]
"""Every node class the pack registers, in menu order."""

__all__ = ["NODE_LIST"]
