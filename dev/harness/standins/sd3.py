"""SD3.5 stand-ins: small, deterministic, random-weight model files in the real formats.

Nothing is downloaded: every weight is drawn from torch's RNG (seeded per model), so the same
seed (and the same torch) gives bit-identical files. Files, inside the models folder (names in
``harness.paths``):

* ``diffusers/sd35-standin/transformer/``  diffusers ``SD3Transformer2DModel`` (tiny, SD3.5-Large-shaped)
* ``diffusers/sd35-standin/vae/``          diffusers ``AutoencoderKL`` with the SD3 VAE config (full size)
* ``diffusion_models/swd-standin-sd35-transformer.safetensors``  the same transformer, one file, diffusers keys
* ``vae/swd-standin-sd35-vae.safetensors``  the same VAE, one file, ComfyUI/LDM keys, fp16
* ``checkpoints/swd-standin-sd35.safetensors``  ComfyUI single-file checkpoint: MMDiT under
  ``model.diffusion_model.`` (ComfyUI's own diffusers->MMDiT conversion) + VAE under
  ``first_stage_model.``; no text encoders
* ``text_encoders/swd-standin-clip_l.safetensors``  full-size CLIP-L (``text_model.*``,
  ``text_projection.weight``), fp16
* ``loras/swd-standin-lora/``  PEFT LoRA (``adapter_config.json`` + ``adapter_model.safetensors``) on the transformer

The builders (``build_transformer``, ``build_vae``, ``build_clip_l``, ``save_peft_lora``,
``transformer_to_comfy_mmdit``) let tests make variants in temporary folders; ``write`` is what
``harness.standins.write_standins`` calls for this family.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch

from .. import paths
from .common import save_peft, save_safetensors, seeded

# Relative paths inside the models folder.
TRANSFORMER_DIR = paths.SD3_TRANSFORMER_DIR
VAE_DIR = paths.SD3_VAE_DIR
DIFFUSION_MODEL_FILE = f"diffusion_models/{paths.SD3_DIFFUSION_MODEL}"
VAE_FILE = f"vae/{paths.SD3_VAE}"
CHECKPOINT_FILE = f"checkpoints/{paths.SD3_CHECKPOINT}"
CLIP_L_FILE = f"text_encoders/{paths.CLIP_L}"
LORA_DIR = f"loras/{paths.SD3_LORA_DIR}"

# Tiny, but with SD3.5 Large's structure (qk RMS norm, 4096-wide context, 2048 pooled).
TRANSFORMER_CONFIG = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    num_layers=2,
    attention_head_dim=64,
    num_attention_heads=2,
    joint_attention_dim=4096,
    caption_projection_dim=128,
    pooled_projection_dim=2048,
    out_channels=16,
    pos_embed_max_size=192,
    qk_norm="rms_norm",
)

# The SD3 / SD3.5 VAE config (full size: ComfyUI detects VAEs by their key layout).
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=2,
    act_fn="silu",
    norm_num_groups=32,
    use_quant_conv=False,
    use_post_quant_conv=False,
    scaling_factor=1.5305,
    shift_factor=0.0609,
    sample_size=1024,
    force_upcast=True,
)

# Standard CLIP-L text tower (OpenAI ViT-L/14); full size because ComfyUI builds it from a fixed config.
CLIP_L_CONFIG = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    projection_dim=768,
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

# SwD-style LoRA (upstream trains rank 64 with these targets; rank 4 keeps it small).
LORA_CONFIG = dict(
    r=4,
    lora_alpha=8,
    target_modules=["to_q", "to_k", "to_v", "to_out.0", "net.0.proj", "net.2"],
    init_lora_weights=False,  # random A and B: the LoRA has a visible effect
)

# Sub-seeds so that the models do not share random streams.
_SEED_OFFSETS = {"transformer": 0, "vae": 1, "clip_l": 2, "lora": 3}


# --------------------------------------------------------------------------- helpers

def import_comfy():
    """ComfyUI's ``comfy`` package from ``paths.COMFYUI`` (its root put first on sys.path)."""
    from ..comfy_host import put_comfyui_first

    put_comfyui_first(paths.COMFYUI)
    import comfy.diffusers_convert
    import comfy.model_detection
    import comfy.utils

    return comfy


# --------------------------------------------------------------------------- builders

def build_transformer(seed: int = 0, **overrides):
    """Random-init diffusers SD3Transformer2DModel (fp32, eval mode)."""
    from diffusers import SD3Transformer2DModel

    cfg = {**TRANSFORMER_CONFIG, **overrides}
    with seeded(seed * 16 + _SEED_OFFSETS["transformer"]):
        model = SD3Transformer2DModel(**cfg)
    return model.eval().requires_grad_(False)


def build_vae(seed: int = 0, **overrides):
    """Random-init diffusers AutoencoderKL with the SD3 VAE config.

    Weights are rounded through fp16 so the fp32 diffusers copy and the fp16 single files
    hold exactly the same values.
    """
    from diffusers import AutoencoderKL

    cfg = {**VAE_CONFIG, **overrides}
    with seeded(seed * 16 + _SEED_OFFSETS["vae"]):
        model = AutoencoderKL(**cfg)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return model.eval().requires_grad_(False)


def build_clip_l(seed: int = 0):
    """Random-init full-size transformers CLIPTextModelWithProjection (CLIP-L)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with seeded(seed * 16 + _SEED_OFFSETS["clip_l"]):
        model = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L_CONFIG))
    return model.eval().requires_grad_(False)


def clip_l_state_dict(model, dtype=torch.float16) -> dict:
    """The keys ComfyUI expects for a CLIP-L file: `text_model.*` and `text_projection.weight`."""
    sd = {k: v.to(dtype) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    assert "text_projection.weight" in sd and "text_model.encoder.layers.0.mlp.fc1.weight" in sd
    return sd


def save_peft_lora(transformer, out_dir, seed: int = 0, **lora_config_kwargs) -> Path:
    """Make a PEFT LoRA on (a copy of) `transformer` and save it with PEFT's save_pretrained.

    `lora_config_kwargs` override LORA_CONFIG (e.g. use_rslora=True, rank_pattern={...},
    alpha_pattern={...}). The transformer passed in is left untouched.
    """
    from peft import LoraConfig, get_peft_model

    out_dir = Path(out_dir)
    cfg = {**LORA_CONFIG, **lora_config_kwargs}
    base = copy.deepcopy(transformer)
    with seeded(seed * 16 + _SEED_OFFSETS["lora"]):
        peft_model = get_peft_model(base, LoraConfig(**cfg))
    return save_peft(peft_model, out_dir)


# --------------------------------------------------------------------------- ComfyUI formats

def transformer_to_comfy_mmdit(sd: dict, output_prefix: str = "model.diffusion_model.") -> dict:
    """diffusers SD3 transformer keys -> ComfyUI MMDiT keys, with ComfyUI's own converter
    (``comfy.model_detection.convert_diffusers_mmdit``, what ComfyUI runs when it loads a
    diffusers-format file)."""
    comfy = import_comfy()
    out = comfy.model_detection.convert_diffusers_mmdit(dict(sd), output_prefix)
    if out is None:
        raise ValueError("not a diffusers SD3 transformer state dict")
    return out


def vae_to_comfy(sd: dict) -> dict:
    """diffusers AutoencoderKL keys -> ComfyUI/LDM VAE keys (what comfy.sd.VAE does on load)."""
    comfy = import_comfy()
    return comfy.diffusers_convert.convert_vae_state_dict(dict(sd))


# --------------------------------------------------------------------------- files

#: ``{name: path inside the models folder}`` this family writes (for the cache manifest).
FILES = {
    "transformer_dir": TRANSFORMER_DIR,
    "transformer_config": f"{TRANSFORMER_DIR}/config.json",
    "transformer_weights": f"{TRANSFORMER_DIR}/diffusion_pytorch_model.safetensors",
    "vae_dir": VAE_DIR,
    "vae_config": f"{VAE_DIR}/config.json",
    "vae_weights": f"{VAE_DIR}/diffusion_pytorch_model.safetensors",
    "diffusion_model": DIFFUSION_MODEL_FILE,
    "vae": VAE_FILE,
    "checkpoint": CHECKPOINT_FILE,
    "clip_l": CLIP_L_FILE,
    "lora_dir": LORA_DIR,
    "lora_config": f"{LORA_DIR}/adapter_config.json",
    "lora_weights": f"{LORA_DIR}/adapter_model.safetensors",
}


def write(out_dir: Path, seed: int, log) -> None:
    """Write this family's stand-ins into the models folder ``out_dir``."""
    out_dir = Path(out_dir)
    # transformer: diffusers folder + one diffusers-keyed file
    transformer = build_transformer(seed)
    shutil.rmtree(out_dir / TRANSFORMER_DIR, ignore_errors=True)
    transformer.save_pretrained(str(out_dir / TRANSFORMER_DIR), safe_serialization=True)
    t_sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    save_safetensors(t_sd, out_dir / DIFFUSION_MODEL_FILE)
    log("sd3 transformer")

    save_peft_lora(transformer, out_dir / LORA_DIR, seed=seed)
    log("sd3 lora")

    # VAE: diffusers folder + ComfyUI-keyed single file
    vae = build_vae(seed)
    shutil.rmtree(out_dir / VAE_DIR, ignore_errors=True)
    vae.save_pretrained(str(out_dir / VAE_DIR), safe_serialization=True)
    vae_comfy = {k: v.to(torch.float16) for k, v in vae_to_comfy(vae.state_dict()).items()}
    del vae
    save_safetensors(vae_comfy, out_dir / VAE_FILE)
    log("sd3 vae")

    # ComfyUI checkpoint: MMDiT (comfy keys, fp32) + VAE (LDM keys, fp16), no text encoders
    ckpt = transformer_to_comfy_mmdit(t_sd, "model.diffusion_model.")
    ckpt.update({f"first_stage_model.{k}": v for k, v in vae_comfy.items()})
    save_safetensors(ckpt, out_dir / CHECKPOINT_FILE)
    del ckpt, vae_comfy
    log("sd3 checkpoint")

    clip = build_clip_l(seed)
    save_safetensors(clip_l_state_dict(clip), out_dir / CLIP_L_FILE)
    log("clip_l")


# --------------------------------------------------------------------------- fp8 "scaled" format

def scaled_fp8_checkpoint(ckpt_sd: dict, prefix: str = "model.diffusion_model.",
                          dtype: torch.dtype = torch.float8_e4m3fn) -> dict:
    """A ComfyUI single-file checkpoint in the fp8 "scaled" format of ``sd3.5_large_fp8_scaled``.

    The format, as ComfyUI 0.3.75 reads it (``comfy/model_detection.py`` pops
    ``<prefix>scaled_fp8`` and sets ``model_config.scaled_fp8`` to its dtype; ``comfy/ops.py``
    ``scaled_fp8_ops`` then makes every ``Linear`` hold an fp8 weight and multiplies it by its
    ``<layer>.scale_weight`` (an fp32 scalar) when it is used):

    * every 2-D ``<prefix>...weight`` (the diffusion model's ``Linear`` weights) stored as
      ``dtype`` after dividing by ``scale_weight = amax(|W|) / finfo(dtype).max`` (round to
      nearest, torch's cast; ComfyUI has no offline quantiser for this format, its own
      ``set_weight`` uses stochastic rounding at LoRA-patch time);
    * ``<layer>.scale_weight`` beside each of them;
    * ``<prefix>scaled_fp8``: an empty tensor of ``dtype`` (the marker; 0 elements, as in the
      released files, which leaves ComfyUI's fp8 matmul optimisation on where the GPU has it);
    * everything else (biases, norms, the conv patch embedding, ``first_stage_model.``) unchanged.

    Args:
        ckpt_sd: ``{key: tensor}`` of a full-precision ComfyUI checkpoint.
    Returns:
        a new ``{key: tensor}``.
    """
    out = {}
    fmax = torch.finfo(dtype).max
    for key, value in ckpt_sd.items():
        if key.startswith(prefix) and key.endswith(".weight") and value.ndim == 2:
            scale = (value.abs().amax().float() / fmax).clamp(min=1e-12)
            out[key] = (value.float() / scale).to(dtype)
            out[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            out[key] = value
    out[f"{prefix}scaled_fp8"] = torch.empty(0, dtype=dtype)
    return out
