"""A diffusers ``StableDiffusion3Pipeline`` made of the project's stand-in files (random weights, offline).

    from harness.standins.sd3_pipeline import build_standin_pipeline
    pipe = build_standin_pipeline()                       # SwD LoRA applied with PeftModel

Parts (nothing is downloaded):

* transformer and VAE: ``<models>/diffusers/sd35-standin/{transformer,vae}`` (``harness.standins.sd3``;
  ``python3 scripts/dev.py setup`` writes them to ``.host/models``);
* the SwD LoRA: ``PeftModel.from_pretrained(transformer, "<models>/loras/swd-standin-lora")``, as the
  upstream README applies ``yresearch/swd-large-6-steps`` (``lora=False`` leaves that to the caller);
* text encoders: two small random CLIP text models built from a config (seeded), shaped to fit
  the transformer: pooled outputs 768 (CLIP-L) + 1280 (CLIP-G) = 2048 = ``pooled_projection_dim``;
  their tokenizers are ComfyUI's CLIP tokenizer files (``<ComfyUI>/comfy/sd1_tokenizer``, found
  through ``COMFYUI_PATH``, default ``.host/ComfyUI``). No T5: ``text_encoder_3=None`` is diffusers'
  supported SD3 mode without T5 (its part of the prompt embedding is zeros, 4096 wide);
* scheduler: ``FlowMatchLCMScheduler(shift=1.0)`` (``swd_core.run`` does not use it).

Run it (``python -m harness.standins.sd3_pipeline``) to print the pipeline's parts.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import paths
from . import sd3
from .common import seeded

STANDIN_LORA = str(paths.MODELS / sd3.LORA_DIR)  # the PEFT folder, as PeftModel.from_pretrained takes it
CLIP_TOKENIZER_DIR = "comfy/sd1_tokenizer"
_SEED_OFFSETS = {"clip_l": 8, "clip_g": 9}  # beside sd3's offsets (0..3)

# Small random CLIP text encoders; only the pooled widths (projection_dim) must be SD3's.
CLIP_CONFIG = dict(vocab_size=49408, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                   bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
CLIP_L_PROJECTION, CLIP_G_PROJECTION = 768, 1280


def build_text_encoders(seed: int = 0, dtype: torch.dtype = torch.float32):
    """Random CLIP-L- and CLIP-G-like ``CLIPTextModelWithProjection`` (pooled 768 and 1280), eval mode."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    encoders = []
    for name, projection in (("clip_l", CLIP_L_PROJECTION), ("clip_g", CLIP_G_PROJECTION)):
        with seeded(seed * 16 + _SEED_OFFSETS[name]):
            model = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_CONFIG, projection_dim=projection))
        encoders.append(model.to(dtype).eval().requires_grad_(False))
    return encoders


def build_tokenizers(comfyui: Path | None = None):
    """Two ``CLIPTokenizer`` from ComfyUI's CLIP tokenizer files (77 tokens; the second pads with "!", as SD3's)."""
    from transformers import CLIPTokenizer

    folder = Path(comfyui or paths.COMFYUI) / CLIP_TOKENIZER_DIR
    if not (folder / "vocab.json").exists():
        raise FileNotFoundError(f"no CLIP tokenizer files in {folder}: set COMFYUI_PATH to a ComfyUI folder "
                                f"(python3 scripts/dev.py setup makes .host/ComfyUI)")
    return (CLIPTokenizer.from_pretrained(str(folder), model_max_length=77),
            CLIPTokenizer.from_pretrained(str(folder), model_max_length=77, pad_token="!"))


def build_standin_pipeline(models_dir: str | Path | None = None, lora: bool = True,
                           dtype: torch.dtype = torch.float32, seed: int = 0, comfyui: str | Path | None = None):
    """The stand-in ``StableDiffusion3Pipeline`` (see the module docstring), on the CPU.

    Args:
        models_dir: the stand-ins' folder (default ``.host/models``).
        lora: apply the stand-in SwD LoRA with ``PeftModel.from_pretrained`` (as upstream's README does).
        dtype: weights' dtype.
        seed: the text encoders' seed.
        comfyui: a ComfyUI folder for the tokenizer files (default ``COMFYUI_PATH`` or ``.host/ComfyUI``).
    """
    from diffusers import AutoencoderKL, FlowMatchLCMScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    models = Path(models_dir or paths.MODELS)
    for part in (sd3.TRANSFORMER_DIR, sd3.VAE_DIR, sd3.LORA_DIR):
        if not (models / part).is_dir():
            raise FileNotFoundError(f"stand-in {models / part} is missing: run python3 scripts/dev.py setup "
                                    f"(or python -m harness.standins --out {models})")
    transformer = SD3Transformer2DModel.from_pretrained(str(models / sd3.TRANSFORMER_DIR), torch_dtype=dtype)
    if lora:
        from peft import PeftModel

        transformer = PeftModel.from_pretrained(transformer, str(models / sd3.LORA_DIR))
    vae = AutoencoderKL.from_pretrained(str(models / sd3.VAE_DIR), torch_dtype=dtype)
    clip_l, clip_g = build_text_encoders(seed, dtype)
    tokenizer, tokenizer_2 = build_tokenizers(comfyui)
    return StableDiffusion3Pipeline(
        transformer=transformer.eval(), scheduler=FlowMatchLCMScheduler(shift=1.0), vae=vae.eval(),
        text_encoder=clip_l, tokenizer=tokenizer, text_encoder_2=clip_g, tokenizer_2=tokenizer_2,
        text_encoder_3=None, tokenizer_3=None,
    )


if __name__ == "__main__":
    pipe = build_standin_pipeline()
    for name, part in pipe.components.items():
        print(f"{name}: {type(part).__name__ if part is not None else None}")
