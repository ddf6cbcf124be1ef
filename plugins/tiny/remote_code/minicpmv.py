"""MiniCPM-V-2.6's layout, written for tiny checkpoints: a Qwen2 language model (`llm`), a SigLIP vision tower
working on patch sequences (`vpm`) and a resampler turning each image or slice into `query_num` embeddings.

Module and parameter names, config fields and input shapes are those of openbmb/MiniCPM-V-2_6, which
optimum-intel's exporter and openvino-genai expect. The exporter replaces the forwards of `vpm` and `resampler`
by its own, with the inputs written below; openvino-genai then slices and normalizes images itself, computes the
vision position ids and the resampler's 2D sin-cos position embedding, and writes 64 `<unk>` per image or slice
into the prompt. The image processor here only carries the published settings for them: it does not process images.

Self-contained (torch and transformers only): it runs from a checkpoint folder with `trust_remote_code`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, Qwen2Config, Qwen2ForCausalLM, Qwen2PreTrainedModel, SiglipVisionConfig
from transformers.image_processing_utils import BaseImageProcessor
from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.siglip.modeling_siglip import SiglipEncoder, SiglipPreTrainedModel

#: The published vision tower: SigLIP-400M at 980 pixels (70x70 positions of 14-pixel patches).
SIGLIP_400M = {
    "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
    "image_size": 980, "patch_size": 14,
}  # fmt: skip

#: The published slicing: up to 9 slices of about 448x448 pixels besides the whole image.
SLICE_CONFIG = {"max_slice_nums": 9, "patch_size": 14, "scale_resolution": 448}

#: The published image processor's settings (preprocessor_config.json).
IMAGE_PROCESSOR_SETTINGS = {
    "max_slice_nums": 9, "scale_resolution": 448, "patch_size": 14, "slice_mode": True, "use_image_id": True,
    "image_feature_size": 64, "im_start": "<image>", "im_end": "</image>", "slice_start": "<slice>",
    "slice_end": "</slice>", "unk": "<unk>", "im_id_start": "<image_id>", "im_id_end": "</image_id>",
    "norm_mean": [0.5, 0.5, 0.5], "norm_std": [0.5, 0.5, 0.5], "version": 2.6,
}  # fmt: skip


class MiniCPMVConfig(Qwen2Config):
    """Qwen2's fields at the top level, the vision tower's in `vision_config`, and MiniCPM-V's own."""

    model_type = "minicpmv"
    sub_configs = {"vision_config": SiglipVisionConfig}

    def __init__(
        self,
        vision_config: dict | SiglipVisionConfig | None = None,
        query_num: int = 64,
        image_size: int = 448,
        patch_size: int = 14,
        slice_mode: bool = True,
        slice_config: dict | None = None,
        use_image_id: bool = True,
        batch_vision_input: bool = True,
        drop_vision_last_layer: bool = False,
        vision_batch_size: int = 16,
        version: float = 2.6,
        **kwargs,
    ) -> None:
        if not isinstance(vision_config, SiglipVisionConfig):
            vision_config = SiglipVisionConfig(**(vision_config or SIGLIP_400M))
        self.vision_config: SiglipVisionConfig = vision_config
        self.query_num = query_num
        self.image_size = image_size
        self.patch_size = patch_size
        self.slice_mode = slice_mode
        self.slice_config = dict(slice_config or SLICE_CONFIG)
        self.use_image_id = use_image_id
        self.batch_vision_input = batch_vision_input
        self.drop_vision_last_layer = drop_vision_last_layer
        self.vision_batch_size = vision_batch_size
        self.version = version
        super().__init__(**kwargs)


class VisionEmbeddings(nn.Module):
    """14-pixel patches of a `(batch, 3, 14, 14 * patches)` row of patches, plus learned positions on a 70x70 grid."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.num_patches_per_side = config.image_size // config.patch_size
        self.patch_embedding = nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, config.patch_size)
        self.position_embedding = nn.Embedding(self.num_patches_per_side**2, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        return patches + self.position_embedding(position_ids)


class VisionEncoder(SiglipEncoder):
    """SigLIP's encoder, called as the exporter's vision forward calls it (with output flags it does not use)."""

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object) -> BaseModelOutput:
        return super().forward(inputs_embeds, attention_mask)


class VisionTransformer(SiglipPreTrainedModel):
    """SigLIP over the patches of several images or slices at once, padded to the longest (`patch_attention_mask`).

    `position_ids` place each patch on the 70x70 grid, stretched to the slice's patch rows and columns.
    """

    config_class = SiglipVisionConfig

    def __init__(self, config: SiglipVisionConfig, drop_last_layer: bool) -> None:
        super().__init__(config)
        self.embeddings = VisionEmbeddings(config)
        self.encoder = VisionEncoder(config)
        if drop_last_layer:
            self.encoder.layers = self.encoder.layers[:-1]
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor, position_ids: torch.Tensor) -> BaseModelOutput:
        hidden = self.embeddings(pixel_values, position_ids)
        mask = _prepare_4d_attention_mask(patch_attention_mask.flatten(1), hidden.dtype)
        return BaseModelOutput(last_hidden_state=self.post_layernorm(self.encoder(hidden, mask).last_hidden_state))


class Resampler(nn.Module):
    """`num_queries` learned queries attending to an image's vision features, into the language model's width.

    `pos_embed` is the 2D sin-cos embedding of each feature's patch row and column, `(patches, batch, width)`;
    `key_padding_mask` marks the padding after each image's patches.
    """

    def __init__(self, num_queries: int, embed_dim: int, kv_dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(num_queries, embed_dim) * 0.02)
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False)
        self.attn = nn.MultiheadAttention(embed_dim, max(1, embed_dim // 128))
        self.ln_q = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ln_post = nn.LayerNorm(embed_dim, eps=1e-6)
        self.proj = nn.Parameter(embed_dim**-0.5 * torch.randn(embed_dim, embed_dim))

    def forward(self, image_feature: torch.Tensor, pos_embed: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        kv = self.ln_kv(self.kv_proj(image_feature)).permute(1, 0, 2)
        query = self.ln_q(self.query).unsqueeze(1).repeat(1, kv.shape[1], 1)
        out = self.attn(query, kv + pos_embed, kv, key_padding_mask=key_padding_mask)[0]
        return self.ln_post(out.permute(1, 0, 2)) @ self.proj


class MiniCPMV(Qwen2PreTrainedModel, GenerationMixin):
    """The language model `llm`, the vision tower `vpm` and the `resampler` between them.

    Its own forward is the language model's: the image embeddings replace the `<unk>` runs of the prompt in the
    exported pipeline, which prepares images itself.
    """

    config_class = MiniCPMVConfig

    def __init__(self, config: MiniCPMVConfig) -> None:
        super().__init__(config)
        self.llm = Qwen2ForCausalLM(config)
        self.vpm = VisionTransformer(config.vision_config, config.drop_vision_last_layer)
        self.resampler = Resampler(config.query_num, config.hidden_size, config.vision_config.hidden_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.llm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.llm.set_input_embeddings(value)

    def forward(self, input_ids: torch.Tensor | None = None, **kwargs: object):
        return self.llm(input_ids=input_ids, **kwargs)


class MiniCPMVImageProcessor(BaseImageProcessor):
    """The published image processor's settings, which openvino-genai reads to slice and normalize images."""

    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**{**IMAGE_PROCESSOR_SETTINGS, **kwargs})
