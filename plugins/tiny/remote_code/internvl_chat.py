"""InternVL2 (`model_type: internvl_chat`) for tiny test checkpoints: InternViT, a pixel-shuffle MLP projector
and a language model transformers ships (Phi-3 for InternVL2-4B).

Written for vlm-router from the published architecture: the module names, config fields and shapes
optimum-intel's exporter (`extract_feature`, `vision_model`, `mlp1`, `language_model`) and openvino-genai
read. A checkpoint carries this file and names it in its config's `auto_map`; transformers loads it with
`trust_remote_code`, so it imports torch and transformers only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast


class InternVisionConfig(PretrainedConfig):
    """InternViT: a ViT with a class token, layer scale and a joint qkv projection.

    Written as InternViT-300M (InternVL2-1B to 8B): layer norms and no q/k normalization, whatever
    `norm_type` and `qk_normalization` say (InternViT-6B's).
    """

    model_type = "intern_vit_6b"

    def __init__(
        self,
        num_channels: int = 3,
        patch_size: int = 14,
        image_size: int = 448,
        qkv_bias: bool = True,
        hidden_size: int = 1024,
        num_attention_heads: int = 16,
        intermediate_size: int = 4096,
        qk_normalization: bool = False,
        num_hidden_layers: int = 24,
        use_flash_attn: bool = False,
        hidden_act: str = "gelu",
        norm_type: str = "layer_norm",
        layer_norm_eps: float = 1e-6,
        initializer_factor: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_channels, self.patch_size, self.image_size = num_channels, patch_size, image_size
        self.qkv_bias, self.qk_normalization, self.use_flash_attn = qkv_bias, qk_normalization, use_flash_attn
        self.hidden_size, self.num_attention_heads, self.intermediate_size = hidden_size, num_attention_heads, intermediate_size
        self.num_hidden_layers, self.hidden_act, self.norm_type = num_hidden_layers, hidden_act, norm_type
        self.layer_norm_eps, self.initializer_factor = layer_norm_eps, initializer_factor


class InternVLChatConfig(PretrainedConfig):
    """The vision tower's and the language model's configs, and how image features become tokens."""

    model_type = "internvl_chat"

    def __init__(
        self,
        vision_config: dict | None = None,
        llm_config: dict | None = None,
        select_layer: int = -1,
        force_image_size: int | None = None,
        downsample_ratio: float = 0.5,
        template: str | None = None,
        dynamic_image_size: bool = False,
        use_thumbnail: bool = False,
        ps_version: str = "v1",
        min_dynamic_patch: int = 1,
        max_dynamic_patch: int = 6,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.vision_config = InternVisionConfig(**(vision_config or {}))
        llm_config = dict(llm_config or {"architectures": ["Phi3ForCausalLM"]})
        self.llm_config = AutoConfig.for_model(llm_config.pop("model_type", "phi3"), **llm_config)
        self.select_layer, self.force_image_size, self.downsample_ratio = select_layer, force_image_size, downsample_ratio
        self.template, self.ps_version = template, ps_version
        self.dynamic_image_size, self.use_thumbnail = dynamic_image_size, use_thumbnail
        self.min_dynamic_patch, self.max_dynamic_patch = min_dynamic_patch, max_dynamic_patch


class InternVisionEmbeddings(nn.Module):
    """Patches of `patch_size` pixels after a class token, plus position embeddings resized to the image."""

    def __init__(self, config: InternVisionConfig) -> None:
        super().__init__()
        self.grid = config.image_size // config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(1, 1, config.hidden_size))
        self.patch_embedding = nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, config.patch_size)
        self.position_embedding = nn.Parameter(torch.randn(1, self.grid**2 + 1, config.hidden_size))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        height, width = patches.shape[2:]
        class_pos, patch_pos = self.position_embedding[:, :1], self.position_embedding[:, 1:]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2).float()
        patch_pos = F.interpolate(patch_pos, size=(height, width), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.to(patches.dtype).flatten(2).transpose(1, 2)
        class_token = self.class_embedding.expand(patches.shape[0], -1, -1).to(patches.dtype)
        return torch.cat([class_token, patches.flatten(2).transpose(1, 2)], dim=1) + torch.cat([class_pos, patch_pos], dim=1)


class InternAttention(nn.Module):
    def __init__(self, config: InternVisionConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.use_flash_attn = config.use_flash_attn  # the exporter turns it off; this module never uses it
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, channels))


class InternMLP(nn.Module):
    def __init__(self, config: InternVisionConfig) -> None:
        super().__init__()
        self.act = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    """Pre-norm attention and MLP, each output scaled per channel (`ls1`, `ls2`) before the residual."""

    def __init__(self, config: InternVisionConfig) -> None:
        super().__init__()
        self.attn, self.mlp = InternAttention(config), InternMLP(config)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ls1 = nn.Parameter(config.initializer_factor * torch.ones(config.hidden_size))
        self.ls2 = nn.Parameter(config.initializer_factor * torch.ones(config.hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class InternVisionEncoder(nn.Module):
    def __init__(self, config: InternVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(InternVisionEncoderLayer(config) for _ in range(config.num_hidden_layers))


class InternVisionModel(PreTrainedModel):
    config_class = InternVisionConfig
    main_input_name = "pixel_values"

    def __init__(self, config: InternVisionConfig) -> None:
        super().__init__(config)
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False, return_dict: bool = True) -> BaseModelOutput:
        hidden_states = [self.embeddings(pixel_values)]
        for layer in self.encoder.layers:
            hidden_states.append(layer(hidden_states[-1]))
        return BaseModelOutput(last_hidden_state=hidden_states[-1], hidden_states=tuple(hidden_states) if output_hidden_states else None)


class InternVLChatModel(PreTrainedModel):
    """The vision tower, `mlp1` projecting pixel-shuffled features, and the language model.

    A 448-pixel tile gives (448 / 14)^2 = 1024 patch features; pixel shuffle by `downsample_ratio` 0.5
    folds each 2x2 block into one, so a tile is 256 `<IMG_CONTEXT>` tokens.
    """

    config_class = InternVLChatConfig
    main_input_name = "pixel_values"
    base_model_prefix = "language_model"

    def __init__(self, config: InternVLChatConfig) -> None:
        super().__init__(config)
        image_size = config.force_image_size or config.vision_config.image_size
        self.num_image_token = int((image_size // config.vision_config.patch_size) ** 2 * config.downsample_ratio**2)
        self.select_layer, self.downsample_ratio, self.ps_version = config.select_layer, config.downsample_ratio, config.ps_version
        self.img_context_token_id = getattr(config, "img_context_token_id", None)
        self.vision_model = InternVisionModel(config.vision_config)
        self.language_model = AutoModelForCausalLM.from_config(config.llm_config)
        shuffled = config.vision_config.hidden_size * int(1 / config.downsample_ratio) ** 2
        llm_hidden = config.llm_config.hidden_size
        self.mlp1 = nn.Sequential(nn.LayerNorm(shuffled), nn.Linear(shuffled, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def pixel_shuffle(self, x: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
        """`(n, w, h, c)` features to `(n, w * s, h * s, c / s^2)`: neighbouring features stacked on channels.

        `ps_version` v1 leaves the result transposed (as the first InternVL models were trained); v2 does not.
        """
        n, w, h, c = x.shape
        x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor)).transpose(1, 2)
        x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / scale_factor**2))
        return x if self.ps_version == "v1" else x.transpose(1, 2)

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(tiles, 3, 448, 448)` pixels to `(tiles, 256, llm hidden)` image embeddings."""
        output = self.vision_model(pixel_values, output_hidden_states=self.select_layer != -1)
        features = output.last_hidden_state if self.select_layer == -1 else output.hidden_states[self.select_layer]
        features = features[:, 1:]  # without the class token
        side = int(features.shape[1] ** 0.5)
        features = self.pixel_shuffle(features.reshape(features.shape[0], side, side, -1), self.downsample_ratio)
        return self.mlp1(features.reshape(features.shape[0], -1, features.shape[-1]))

    def embed(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings of `input_ids`, the `<IMG_CONTEXT>` positions taking the tiles' image embeddings in order."""
        embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is None:
            return embeds
        image = self.extract_feature(pixel_values).reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        return embeds.masked_scatter((input_ids == self.img_context_token_id).unsqueeze(-1), image)

    def forward(
        self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None, **kwargs
    ) -> CausalLMOutputWithPast:
        return self.language_model(inputs_embeds=self.embed(input_ids, pixel_values), **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None, **kwargs) -> torch.LongTensor:
        """New tokens after `input_ids`, generated by the language model from the merged embeddings.

        Loaded with an auto class, a model defining `generate` gets transformers' `GenerationMixin` and its
        `generation_config.json`, which the exporter then writes beside the OpenVINO models.
        """
        return self.language_model.generate(inputs_embeds=self.embed(input_ids, pixel_values), **kwargs)
