"""SDXL stand-ins: random-weight UNets in the real formats, built by diffusers and loaded by ComfyUI.

* **Small** (``build_unet``, ``comfy_model``): a diffusers ``UNet2DConditionModel`` with SDXL's
  layout (``text_time`` added conditioning of 2816 = pooled 1280 + six 256-wide size
  embeddings, linear transformer projections, no attention at the first level, two
  transformer blocks per attention to exercise SDXL's deep blocks) at a tiny width, and the
  same weights in ComfyUI's ``model_base.SDXL``. ComfyUI recognises SDXL only from the full
  configuration (320 channels, depths [0,0,2,2,10,10], context 2048), so the small model is
  built through ComfyUI's own ``supported_models.SDXL`` with an explicit config
  (`comfy_unet_config`) and its own key conversion (``comfy.utils.unet_to_diffusers``).
* **File** (``write``): an SDXL checkpoint that ``CheckpointLoaderSimple`` detects as SDXL (see
  ``CHECKPOINT_CONFIG``), with the SDXL VAE, and the SwD-SDXL PEFT LoRA folder for it.

ComfyUI must be importable for ``comfy_model`` and ``write``; the diffusers/PEFT builders do not need it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .. import paths
from .common import save_safetensors, seeded
from .flux import _random_state_dict, _save_peft

LATENT_CHANNELS = 4
POOLED_FEATURES = 1280  # OpenCLIP ViT-bigG's projection: SDXL's pooled text vector
#: SDXL's added conditioning: pooled text (1280) + 6 size/crop values x 256-wide sinusoidal embeddings
ADM_FEATURES = POOLED_FEATURES + 6 * 256

#: Tiny SDXL-shaped UNet. ComfyUI's UNet uses 32-group norms, so widths are multiples of 32;
#: ``attention_head_dim`` is diffusers' legacy name for the number of heads (16 channels each).
SMALL_CONFIG = dict(
    sample_size=32,
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=2,
    transformer_layers_per_block=(1, 2),
    attention_head_dim=(2, 4),
    cross_attention_dim=32,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=ADM_FEATURES,
    norm_num_groups=32,
)

#: What the SDXL SwD LoRA targets is in its ``adapter_config.json`` on the hub (not readable here);
#: SDXL distillation LoRAs (LCM, DMD2) target the attention, feed-forward and projection layers
#: and the ResNet convolutions; the stand-in does the same, so linear and conv LoRA pairs are both
#: exercised. Rank 4 keeps it small.
LORA_CONFIG = dict(
    r=4,
    lora_alpha=8,
    target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                    "conv1", "conv2", "time_emb_proj"],
    init_lora_weights=False,
)

_SEED_OFFSETS = {"unet": 0, "vae": 1, "lora": 3, "file": 4}


def _sub_seed(seed: int, what: str) -> int:
    return seed * 16 + _SEED_OFFSETS[what]


def build_unet(seed: int = 0, **overrides):
    """Random-init diffusers ``UNet2DConditionModel`` with ``SMALL_CONFIG`` (fp32, eval)."""
    from diffusers import UNet2DConditionModel

    with seeded(_sub_seed(seed, "unet")):
        model = UNet2DConditionModel(**{**SMALL_CONFIG, **overrides})
    return model.eval().requires_grad_(False)


def comfy_unet_config(config) -> dict:
    """ComfyUI's ``unet_config`` (``openaimodel.UNetModel`` arguments) for a diffusers SDXL-layout UNet config.

    The keys and fixed values are those of ComfyUI's own SDXL entry in
    ``model_detection.unet_config_from_diffusers_unet``; the sizes come from ``config``.
    """
    base = config["block_out_channels"][0]
    levels = len(config["block_out_channels"])
    layers = config["layers_per_block"]
    depths = [0 if kind == "DownBlock2D" else n
              for kind, n in zip(config["down_block_types"], config["transformer_layers_per_block"])]
    heads = config["attention_head_dim"]
    head_channels = {c // h for c, h, d in zip(config["block_out_channels"], heads, depths) if d}
    if len(head_channels) != 1:
        raise ValueError(f"ComfyUI's UNet has one head width for all levels, this config has {head_channels}")
    return {
        "use_checkpoint": False, "image_size": 32, "out_channels": config["out_channels"],
        "use_spatial_transformer": True, "legacy": False, "num_classes": "sequential",
        "adm_in_channels": config["projection_class_embeddings_input_dim"], "in_channels": config["in_channels"],
        "model_channels": base, "num_res_blocks": [layers] * levels,
        "transformer_depth": [d for d in depths for _ in range(layers)],
        "channel_mult": [c // base for c in config["block_out_channels"]],
        "transformer_depth_middle": depths[-1], "use_linear_in_transformer": config["use_linear_projection"],
        "context_dim": config["cross_attention_dim"], "num_head_channels": head_channels.pop(),
        "transformer_depth_output": [d for d in depths for _ in range(layers + 1)],
        "use_temporal_attention": False, "use_temporal_resblock": False,
    }


def comfy_state_dict(diffusers_state_dict: dict, unet_config: dict) -> dict:
    """diffusers UNet keys -> ComfyUI's (LDM) UNet keys, by ComfyUI's own map for ``unet_config``."""
    import comfy.utils

    mapping = comfy.utils.unet_to_diffusers(unet_config)  # diffusers name -> LDM name
    missing = set(diffusers_state_dict) - set(mapping)
    if missing:
        raise ValueError(f"ComfyUI's SDXL map has no LDM name for {sorted(missing)[:5]}")
    return {mapping[k]: v for k, v in diffusers_state_dict.items()}


def comfy_model(unet, dtype: torch.dtype = torch.float32):
    """ComfyUI's ``model_base.SDXL`` (EPS) with ``unet``'s weights, in a ``ModelPatcher``.

    Built by ``comfy.supported_models.SDXL`` from the explicit `comfy_unet_config` (its
    constructor resets ``num_head_channels`` to SDXL's 64, so it is set again after).
    """
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    unet_config = comfy_unet_config(unet.config)
    sd = comfy_state_dict({k: v.to(dtype) for k, v in unet.state_dict().items()}, unet_config)
    model_config = comfy.supported_models.SDXL(unet_config)
    model_config.unet_config["num_head_channels"] = unet_config["num_head_channels"]
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({})
    missing, unexpected = model.diffusion_model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"ComfyUI's SDXL UNet: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def save_peft_lora(unet, out_dir, seed: int = 0, **lora_config_kwargs) -> Path:
    """A PEFT LoRA on (a copy of) ``unet``, saved with PEFT's ``save_pretrained`` (see ``flux.save_peft_lora``)."""
    from peft import LoraConfig, get_peft_model

    with seeded(_sub_seed(seed, "lora")):
        peft_model = get_peft_model(copy.deepcopy(unet), LoraConfig(**{**LORA_CONFIG, **lora_config_kwargs}))
    return _save_peft(peft_model, Path(out_dir))


def build_pipeline(seed: int = 0, unet=None):
    """A tiny diffusers ``StableDiffusionXLPipeline`` around ``unet`` (default: ``build_unet(seed)``).

    Real diffusers/transformers classes at a small size: two CLIP text encoders whose
    penultimate hidden states concatenate to the UNet's context width (as CLIP-L 768 + OpenCLIP-G
    1280 make SDXL's 2048), the second with a 1280-wide projection (SDXL's pooled vector), a
    4-channel ``AutoencoderKL`` with four levels (``vae_scale_factor`` 8) and SDXL's 0.13025
    scale, and SDXL base's ``DDPMScheduler`` (upstream sets it). The tokenizer is ComfyUI's
    CLIP tokenizer (``comfy/sd1_tokenizer``), so ComfyUI must be importable. For ``swd_core.run``.
    """
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    import comfy.sd1_clip

    from ..reference.sdxl import ddpm_scheduler

    unet = build_unet(seed) if unet is None else unet
    tokenizer = CLIPTokenizer.from_pretrained(str(Path(comfy.sd1_clip.__file__).resolve().parent / "sd1_tokenizer"),
                                              model_max_length=77)
    half = unet.config.cross_attention_dim // 2

    def clip_config(**kw):
        return CLIPTextConfig(hidden_size=half, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              vocab_size=tokenizer.vocab_size, max_position_embeddings=77,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id, **kw)

    with seeded(_sub_seed(seed, "file")):
        encoder = CLIPTextModel(clip_config())
        encoder_2 = CLIPTextModelWithProjection(clip_config(projection_dim=POOLED_FEATURES))
    with seeded(_sub_seed(seed, "vae")):
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            block_out_channels=[8, 8, 8, 8], norm_num_groups=4, layers_per_block=1,
                            scaling_factor=0.13025)
    pipe = StableDiffusionXLPipeline(vae=vae.eval(), text_encoder=encoder.eval(), text_encoder_2=encoder_2.eval(),
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
                                     scheduler=ddpm_scheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


__all__ = ["build_pipeline", "ADM_FEATURES", "LATENT_CHANNELS", "POOLED_FEATURES", "SMALL_CONFIG", "LORA_CONFIG", "build_unet",
           "comfy_unet_config", "comfy_state_dict", "comfy_model", "save_peft_lora", "paths",
           "save_safetensors", "_random_state_dict"]
