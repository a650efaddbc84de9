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
  ``CHECKPOINT_CONFIG``), with the SDXL VAE, and the SwD-SDXL PEFT LoRA folder for it; the same
  checkpoint as split files (``split_files``: UNet, CLIP-G, VAE) for ``UNETLoader`` +
  ``DualCLIPLoader`` + ``VAELoader``.

ComfyUI must be importable for ``comfy_model`` and ``write``; the diffusers/PEFT builders do not need it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .. import paths
from .common import fp8_weights, random_state_dict, save_peft, seeded

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


def sub_seed(seed: int, what: str) -> int:
    return seed * 16 + _SEED_OFFSETS[what]


def build_unet(seed: int = 0, **overrides):
    """Random-init diffusers ``UNet2DConditionModel`` with ``SMALL_CONFIG`` (fp32, eval)."""
    from diffusers import UNet2DConditionModel

    with seeded(sub_seed(seed, "unet")):
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

    with seeded(sub_seed(seed, "lora")):
        peft_model = get_peft_model(copy.deepcopy(unet), LoraConfig(**{**LORA_CONFIG, **lora_config_kwargs}))
    return save_peft(peft_model, Path(out_dir))


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

    with seeded(sub_seed(seed, "file")):
        encoder = CLIPTextModel(clip_config())
        encoder_2 = CLIPTextModelWithProjection(clip_config(projection_dim=POOLED_FEATURES))
    with seeded(sub_seed(seed, "vae")):
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            block_out_channels=[8, 8, 8, 8], norm_num_groups=4, layers_per_block=1,
                            scaling_factor=0.13025)
    pipe = StableDiffusionXLPipeline(vae=vae.eval(), text_encoder=encoder.eval(), text_encoder_2=encoder_2.eval(),
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
                                     scheduler=ddpm_scheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------- files (workflows)

#: The smallest UNet ComfyUI's checkpoint detection calls SDXL (``supported_models.SDXL.unet_config``:
#: 320 channels, input depths [0,0,2,2,10,10], context 2048, adm 2816, linear projections): the
#: channel multipliers, the decoder's and the middle block's depths are not part of the match, so
#: every level stays 320 wide and the decoder has one transformer block per attention instead of
#: SDXL's [1,2,4] widths and 2/10 blocks. About 0.14 G parameters (SDXL's UNet: 2.6 G).
CHECKPOINT_UNET_CONFIG = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "num_classes": "sequential", "adm_in_channels": ADM_FEATURES, "in_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10], "channel_mult": [1, 1, 1],
    "transformer_depth_middle": 1, "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 64,
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1], "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
#: SDXL's VAE (4 latent channels, full size: ComfyUI fixes the SD VAE's widths) and its scale.
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
                  down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                  block_out_channels=[128, 256, 512, 512], layers_per_block=2, scaling_factor=0.13025)
#: OpenCLIP ViT-bigG/14's text tower as SDXL uses it (transformers' names; ComfyUI saves it in OpenCLIP's).
CLIP_G_CONFIG = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                     projection_dim=POOLED_FEATURES, hidden_act="gelu", vocab_size=49408,
                     max_position_embeddings=77)

CHECKPOINT_FILE = f"checkpoints/{paths.SDXL_CHECKPOINT}"
LORA_DIR = f"loras/{paths.SDXL_LORA_DIR}"
DIFFUSION_MODEL_FILE = f"diffusion_models/{paths.SDXL_DIFFUSION_MODEL}"
CLIP_G_FILE = f"text_encoders/{paths.SDXL_CLIP_G}"
VAE_FILE = f"vae/{paths.SDXL_VAE}"
FILES = {
    "sdxl_checkpoint": CHECKPOINT_FILE,
    "sdxl_diffusion_model": DIFFUSION_MODEL_FILE,
    "sdxl_clip_g": CLIP_G_FILE,
    "sdxl_vae": VAE_FILE,
    "sdxl_lora_config": f"{LORA_DIR}/adapter_config.json",
    "sdxl_lora_weights": f"{LORA_DIR}/adapter_model.safetensors",
}


def _comfy_unet_shapes(unet_config: dict) -> dict:
    """``{LDM key: shape}`` of ComfyUI's SDXL UNet for ``unet_config``, built on the meta device."""
    import comfy.supported_models

    model_config = comfy.supported_models.SDXL(dict(unet_config))
    model_config.unet_config["num_head_channels"] = unet_config["num_head_channels"]
    model = model_config.get_model({}, device="meta")
    return {k: v.shape for k, v in model.diffusion_model.state_dict().items()}


def checkpoint_state_dict(seed: int = 0, dtype: torch.dtype = torch.float16) -> dict:
    """An SDXL single-file checkpoint (``model.diffusion_model.``, ``first_stage_model.``,
    ``conditioner.embedders.0/1``), keys written by ComfyUI's own SDXL save conversion."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    import comfy.diffusers_convert
    import comfy.supported_models

    from . import sd3

    unet = random_state_dict(_comfy_unet_shapes(CHECKPOINT_UNET_CONFIG), sub_seed(seed, "file"), dtype)
    out = {f"model.diffusion_model.{k}": v for k, v in unet.items()}
    with seeded(sub_seed(seed, "vae")):
        vae = AutoencoderKL(**VAE_CONFIG)
    vae_sd = comfy.diffusers_convert.convert_vae_state_dict(vae.state_dict())
    out.update({f"first_stage_model.{k}": v.to(dtype) for k, v in vae_sd.items()})
    clip = {f"clip_l.transformer.{k}": v for k, v in sd3.clip_l_state_dict(sd3.build_clip_l(seed), dtype).items()}
    with torch.device("meta"):
        clip_g_model = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G_CONFIG))
        shapes = {k: v.shape for k, v in clip_g_model.state_dict().items()}
    clip_g = random_state_dict(shapes, sub_seed(seed, "file") + 1, dtype)
    clip.update({f"clip_g.transformer.{k}": v for k, v in clip_g.items() if not k.endswith("position_ids")})
    model_config = comfy.supported_models.SDXL(dict(CHECKPOINT_UNET_CONFIG))
    out.update(model_config.process_clip_state_dict_for_saving(clip))
    return out


def split_files(checkpoint: dict) -> dict[str, dict]:
    """The checkpoint as the split files people load with ``UNETLoader`` + ``DualCLIPLoader`` (type sdxl) +
    ``VAELoader``: ``{file in the models folder: state dict}``, the tensors shared with ``checkpoint``.

    * the UNet alone in the LDM layout (``model.diffusion_model.`` dropped: what ``ModelSave`` and
      community SDXL "unet" files hold; UNETLoader detects SDXL from it as the checkpoint loader does);
    * CLIP-G in the transformers layout of Comfy-Org's ``clip_g.safetensors`` (``text_model.*``,
      ``text_projection.weight``), converted from the checkpoint's OpenCLIP keys by ComfyUI's own
      ``supported_models.SDXL.process_clip_state_dict``;
    * the VAE in the LDM layout of ``sdxl_vae.safetensors`` (``first_stage_model.`` dropped).

    No CLIP-L file: the checkpoint's CLIP-L is the ``CLIP_L`` stand-in's (same builder and seed).
    """
    import comfy.supported_models
    import comfy.utils

    def cut(prefix: str, sd: dict) -> dict:
        return comfy.utils.state_dict_prefix_replace(dict(sd), {prefix: ""}, filter_keys=True)

    clip = comfy.supported_models.SDXL(dict(CHECKPOINT_UNET_CONFIG)).process_clip_state_dict(dict(checkpoint))
    return {
        DIFFUSION_MODEL_FILE: cut("model.diffusion_model.", checkpoint),
        CLIP_G_FILE: cut("clip_g.transformer.", clip),
        VAE_FILE: cut("first_stage_model.", checkpoint),
    }


def fp8_checkpoint(checkpoint: dict, dtype: torch.dtype = torch.float8_e4m3fn) -> dict:
    """The checkpoint as community "fp8" SDXL checkpoints store it: every UNet weight matrix and convolution
    kernel cast to ``dtype`` (round to nearest, no scale keys), biases, norms, text encoders and VAE as they are."""
    return fp8_weights(checkpoint, "model.diffusion_model.", dtype)


def write_lora(models_dir, seed: int = 0) -> Path:
    """The SwD-SDXL PEFT LoRA for the checkpoint stand-in, at ``loras/<SDXL_LORA_DIR>``.

    PEFT's own ``LoraConfig.save_pretrained`` writes ``adapter_config.json``; the weights are
    ``base_model.model.<diffusers name>.lora_A/B.weight`` for every module ``LORA_CONFIG`` targets,
    named by ComfyUI's diffusers map of the checkpoint's UNet, shapes from its weights.
    """
    from peft import LoraConfig

    import comfy.utils

    from .common import save_safetensors

    out_dir = Path(models_dir) / LORA_DIR
    shapes = _comfy_unet_shapes(CHECKPOINT_UNET_CONFIG)
    targets = tuple(LORA_CONFIG["target_modules"])
    r = LORA_CONFIG["r"]
    pairs = {}
    for name, ldm in sorted(comfy.utils.unet_to_diffusers(CHECKPOINT_UNET_CONFIG).items()):
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        if module is None or not (module.endswith(targets) and len(shapes[ldm]) in (2, 4)):
            continue
        shape = shapes[ldm]
        a_shape = (r, *shape[1:])
        b_shape = (shape[0], r, *([1] * (len(shape) - 2)))
        pairs[f"base_model.model.{module}.lora_A.weight"] = a_shape
        pairs[f"base_model.model.{module}.lora_B.weight"] = b_shape
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    config = LoraConfig(**{k: v for k, v in LORA_CONFIG.items() if k != "init_lora_weights"})
    config.save_pretrained(str(out_dir))
    save_safetensors(random_state_dict(pairs, sub_seed(seed, "lora"), torch.float32),
                     out_dir / "adapter_model.safetensors")
    return out_dir


def write(out_dir: Path, seed: int, log) -> None:
    """Write this family's stand-ins into the models folder ``out_dir``."""
    from ..comfy_host import put_comfyui_first
    from .common import save_safetensors

    put_comfyui_first(paths.COMFYUI)
    out_dir = Path(out_dir)
    checkpoint = checkpoint_state_dict(seed)
    save_safetensors(checkpoint, out_dir / CHECKPOINT_FILE)
    log("sdxl checkpoint")
    for rel, sd in split_files(checkpoint).items():
        save_safetensors(sd, out_dir / rel)
    del checkpoint
    log("sdxl split files")
    write_lora(out_dir, seed)
    log("sdxl lora")
