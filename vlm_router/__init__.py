"""vlm-router: an OpenAI-compatible server for vision-language models on OpenVINO.

The names below are the plugin API, the stable surface a family plugin imports (docs/plugins.md)::

    from vlm_router import Capabilities, Family, Image, Message, Text, Video, VideoSupport, hookimpl
"""

import pluggy

from .config import VideoSupport
from .conversation import Image, Message, Part, Text, ToolCall, Video
from .family import Capabilities, CapabilityError, Family, PixelRange
from .tiny import TinyModel

__version__ = "0.1.0"

#: Marks a plugin's hook implementations; see `vlm_router.hookspecs`.
hookimpl = pluggy.HookimplMarker("vlm_router")

__all__ = [
    "Capabilities",
    "CapabilityError",
    "Family",
    "Image",
    "Message",
    "Part",
    "PixelRange",
    "Text",
    "TinyModel",
    "ToolCall",
    "Video",
    "VideoSupport",
    "hookimpl",
]
