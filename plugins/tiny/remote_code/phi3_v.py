"""Phi-3.5-vision (`model_type: phi3_v`) for tiny test checkpoints: a CLIP vision tower, learnable separators for
the HD layout of its crops, an MLP projector and the Phi-3 language model transformers ships.

Written for vlm-router from the published architecture: the module names, config fields and shapes
optimum-intel's exporter (`model.vision_embed_tokens` with `get_img_features`, `img_projection`, `glb_GN` and
`sub_GN`; `model.embed_tokens`; the language model) and openvino-genai read. The published code builds a fixed
CLIP ViT-L/14-336; this one builds the tower `vision_config` describes. Images are laid out at run time, by
openvino-genai or optimum-intel: the HD transform cuts an image into 336-pixel crops after a 336-pixel global view,
each crop's 24x24 patch features are merged 2x2 into 12x12 tokens of 4 x `image_dim_out`, a `sub_GN` closes every
row, and `glb_GN` separates the crops (first, `hd_transform_order: sub_glb`) from the global view.

A checkpoint carries this file and names it in its config's `auto_map`; transformers loads it with
`trust_remote_code`, so it imports torch and transformers only.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, Phi3Config, Phi3ForCausalLM, Phi3Model
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


class Phi3VConfig(Phi3Config):
    """Phi-3's fields, how images are embedded (`embd_layer`, `img_processor`) and the vision tower (`vision_config`).

    The exporter reads the tower's config as `AutoConfig.from_pretrained(img_processor["model_name"]).vision_config`:
    the published checkpoint names openai/clip-vit-large-patch14-336 there, a tiny checkpoint names its own folder.
    """

    model_type = "phi3_v"

    def __init__(
        self,
        embd_layer: dict | None = None,
        img_processor: dict | None = None,
        vision_config: CLIPVisionConfig | dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.embd_layer = embd_layer or {}
        self.img_processor = img_processor or {}
        if not isinstance(vision_config, CLIPVisionConfig):
            vision_config = CLIPVisionConfig(**(vision_config or {}))
        self.vision_config = vision_config


class Phi3ImageEmbedding(nn.Module):
    """The CLIP tower (`img_processor`), the separators and the projector of the merged 2x2 patch features."""

    def __init__(self, config: Phi3VConfig) -> None:
        super().__init__()
        self.img_processor = CLIPVisionModel(config.vision_config)
        self.layer_idx = config.img_processor.get("layer_idx", -2)
        merged = 4 * config.img_processor["image_dim_out"]
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, merged))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, merged))
        self.img_projection = nn.Sequential(
            nn.Linear(merged, config.hidden_size), nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size)
        )

    def get_img_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(crops, 3, 336, 336)` pixels to `(crops, 576, image_dim_out)`: layer `layer_idx`'s patches, no class token."""
        return self.img_processor(pixel_values, output_hidden_states=True).hidden_states[self.layer_idx][:, 1:]


class Phi3VModel(Phi3Model):
    """The Phi-3 decoder with the image embedding beside its token embedding."""

    config_class = Phi3VConfig

    def __init__(self, config: Phi3VConfig) -> None:
        super().__init__(config)
        self.vision_embed_tokens = Phi3ImageEmbedding(config)


class Phi3VForCausalLM(Phi3ForCausalLM):
    """Phi-3.5-vision's causal LM; it runs on `inputs_embeds` in which the runtime has put the image tokens."""

    config_class = Phi3VConfig

    def __init__(self, config: Phi3VConfig) -> None:
        super().__init__(config)
        self.model = Phi3VModel(config)
        self.post_init()


class Phi3VImageProcessor(BaseImageProcessor):
    """The image settings openvino-genai's Phi-3-vision preprocessing reads (`preprocessor_config.json`).

    `num_crops` bounds the 336-pixel crops of the HD transform; `num_img_tokens` is the 144 tokens of one crop.
    The transform itself runs in openvino-genai; this class carries the settings only.
    """

    def __init__(
        self,
        num_crops: int = 1,
        num_img_tokens: int = 144,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        do_convert_rgb: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_crops = num_crops
        self.num_img_tokens = num_img_tokens
        self.image_mean = image_mean if image_mean is not None else OPENAI_CLIP_MEAN
        self.image_std = image_std if image_std is not None else OPENAI_CLIP_STD
        self.do_convert_rgb = do_convert_rgb
