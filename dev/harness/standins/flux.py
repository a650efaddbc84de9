"""FLUX.1 stand-ins: random weights in the real formats, built by diffusers and loaded by ComfyUI.

Two kinds, both deterministic (the same seed and torch give identical tensors and bytes):

* **Small** (``build_transformer``, ``comfy_model``): a diffusers ``FluxTransformer2DModel``
  with a tiny explicit config, and the same weights as ComfyUI's ``model_base.Flux`` in a
  ``ModelPatcher``, for fast parity tests. The weights in the published BFL layout
  (``flux_keys``) and ComfyUI's own detection (``detect_unet_config``) build it;
  only the two fields detection fixes for FLUX.1 (24 heads, RoPE axes 16/56/56, which force
  hidden size 3072) are set from the diffusers config.
* **Files** (``write``, names in ``harness.paths``): what a FLUX.1-dev workflow loads, in the
  real formats: the transformer (full width, one double and one single block, BFL/ComfyUI keys,
  bf16) that ``UNETLoader`` detects as FLUX.1-dev, the VAE (FLUX's 16-channel VAE, full size
  because ComfyUI fixes its widths, LDM keys, bf16) and the SwD-FLUX PEFT LoRA. The text
  encoder is the SD3 family's full-size CLIP-L stand-in: a T5-XXL that encodes is 4.9 GB even
  in fp8, too large for these machines (ComfyUI builds it at full size whatever the file holds
  and leaves missing weights uninitialised: measured, NaN after ~50 s), so the file stand-in's
  text context is CLIP-L's 768 wide instead of T5's 4096, and the workflow tests load the text
  encoder with ``CLIPLoader`` (see ``harness.standin_workflow``).

``save_peft_lora`` writes a PEFT LoRA folder (``adapter_config.json`` +
``adapter_model.safetensors``, keys ``base_model.model.<diffusers name>``) as upstream's
``yresearch/swd_flux`` is laid out.

ComfyUI must be importable (its root first on ``sys.path``) for ``comfy_model`` and
``write_files``; the diffusers/PEFT builders do not need it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .. import paths
from . import flux_keys, sd3
from .common import random_state_dict, save_peft, save_safetensors, seeded

#: Tiny FLUX.1-dev-shaped transformer (guidance embedding, 2 double + 2 single blocks).
#: ``attention_head_dim`` must equal ``sum(axes_dims_rope)``, as in FLUX (128 = 16 + 56 + 56).
SMALL_CONFIG = dict(
    patch_size=1,
    in_channels=64,  # 16 latent channels x 2x2 patch
    num_layers=2,
    num_single_layers=2,
    attention_head_dim=32,
    num_attention_heads=2,
    joint_attention_dim=64,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(8, 12, 12),
)

#: FLUX.1-dev's transformer config with one double and one single block: ComfyUI detects FLUX
#: only at full width (24 heads, RoPE axes 16/56/56), so width and pooled (CLIP-L, 768) sizes are
#: the real ones; the text context is CLIP-L's 768 (T5-XXL's 4096 in the real model: see above).
FULL_WIDTH_CONFIG = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=768,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)

#: FLUX.1's VAE (``ae.safetensors``): SD3's 16-channel layout with FLUX's scale and shift.
VAE_CONFIG = {**sd3.VAE_CONFIG, "scaling_factor": 0.3611, "shift_factor": 0.1159}

#: The modules the FLUX SwD LoRA targets (PEFT suffix names): the double blocks' attention and
#: feed-forwards, the single blocks' attention, ``proj_mlp`` and ``proj_out`` (``proj_out`` also
#: matches the final projection), ``context_embedder`` and every AdaLN ``linear``
#: (``norm1``, ``norm1_context``, single ``norm``, ``norm_out``). swd#10's log lists
#: ``context_embedder``, ``proj_out`` and ``single_transformer_blocks.*.attn.to_k``; PEFT has no
#: default targets for diffusers models, so the list is explicit. Rank 4 keeps it small.
LORA_CONFIG = dict(
    r=4,
    lora_alpha=8,
    target_modules=[
        "to_q", "to_k", "to_v", "to_out.0",
        "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
        "net.0.proj", "net.2",
        "proj_mlp", "proj_out", "context_embedder", "linear",
    ],
    init_lora_weights=False,  # random A and B: the LoRA has a visible effect
)

# Paths inside the models folder.
TRANSFORMER_FILE = f"diffusion_models/{paths.FLUX_DIFFUSION_MODEL}"
VAE_FILE = f"vae/{paths.FLUX_VAE}"
LORA_DIR = f"loras/{paths.FLUX_LORA_DIR}"

#: ``{name: path in the models folder}`` this family writes (for the cache manifest).
FILES = {
    "flux_diffusion_model": TRANSFORMER_FILE,
    "flux_vae": VAE_FILE,
    "flux_lora_config": f"{LORA_DIR}/adapter_config.json",
    "flux_lora_weights": f"{LORA_DIR}/adapter_model.safetensors",
}

_SEED_OFFSETS = {"transformer": 0, "vae": 1, "clip_l": 2, "lora": 3, "full": 4}


def _sub_seed(seed: int, what: str) -> int:
    return seed * 16 + _SEED_OFFSETS[what]


# --------------------------------------------------------------------------- small (parity)

def build_transformer(seed: int = 0, **overrides):
    """Random-init diffusers ``FluxTransformer2DModel`` with ``SMALL_CONFIG`` (fp32, eval)."""
    from diffusers import FluxTransformer2DModel

    with seeded(_sub_seed(seed, "transformer")):
        model = FluxTransformer2DModel(**{**SMALL_CONFIG, **overrides})
    return model.eval().requires_grad_(False)


def comfy_state_dict(diffusers_state_dict: dict, clone: bool = True) -> dict:
    """diffusers FLUX transformer keys -> the BFL layout of the published files (and ComfyUI's).

    Fuses q/k/v (and the single blocks' ``proj_mlp``) into ``qkv``/``linear1``, names the RMSNorm
    weights ``.scale`` and swaps ``norm_out``'s scale/shift halves (``flux_keys``: the table is ours,
    not the host's converter, so a host update cannot change a stand-in). With ``clone`` (the
    default) the result shares no storage with the input.
    """
    out = flux_keys.bfl_state_dict(diffusers_state_dict)
    return {k: v.clone() for k, v in out.items()} if clone else out


def comfy_model(transformer, dtype: torch.dtype = torch.float32):
    """ComfyUI's ``model_base.Flux`` with ``transformer``'s weights, in a ``ModelPatcher``.

    ComfyUI's detection fixes 24 heads and RoPE axes (16, 56, 56) for FLUX.1; everything else
    (depths, widths, guidance embedding, biases) is detected from the converted weights. The
    head count and axes are taken from the diffusers config so that a small model loads. ComfyUI
    converts CPU copies of the weights in ``dtype`` (its converter writes into its input; a GPU
    ``transformer`` gets no second copy on the GPU).
    """
    import comfy.model_detection
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    sd = comfy_state_dict({k: v.to("cpu", dtype, copy=True) for k, v in transformer.state_dict().items()},
                          clone=False)
    unet_config = comfy.model_detection.detect_unet_config(sd, "")
    unet_config["num_heads"] = transformer.config.num_attention_heads
    unet_config["axes_dim"] = list(transformer.config.axes_dims_rope)
    model_config = comfy.model_detection.model_config_from_unet_config(unet_config, sd)
    if not isinstance(model_config, comfy.supported_models.Flux):
        raise ValueError(f"ComfyUI built {type(model_config).__name__}, not Flux, from {unet_config}")
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model(sd, "")
    model.load_model_weights(sd, "")
    del sd
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def save_peft_lora(transformer, out_dir, seed: int = 0, **lora_config_kwargs) -> Path:
    """A PEFT LoRA on (a copy of) ``transformer``, saved with PEFT's ``save_pretrained``.

    ``lora_config_kwargs`` override ``LORA_CONFIG``. Writes ``adapter_config.json`` (sorted,
    no machine paths) and ``adapter_model.safetensors`` into ``out_dir`` (replaced).
    """
    from peft import LoraConfig, get_peft_model

    out_dir = Path(out_dir)
    with seeded(_sub_seed(seed, "lora")):
        peft_model = get_peft_model(copy.deepcopy(transformer), LoraConfig(**{**LORA_CONFIG, **lora_config_kwargs}))
    return save_peft(peft_model, out_dir)


def build_pipeline(seed: int = 0, transformer=None):
    """A tiny diffusers ``FluxPipeline`` around ``transformer`` (default: ``build_transformer(seed)``).

    Every part is the real diffusers/transformers class at a small size: CLIP text model
    (width = ``pooled_projection_dim``), T5 encoder (``d_model`` = ``joint_attention_dim``) and a
    16-channel ``AutoencoderKL`` with four levels (so ``vae_scale_factor`` is 8) and FLUX's
    scale/shift. The tokenizers are the ones ComfyUI ships (``comfy/sd1_tokenizer``,
    ``comfy/text_encoders/t5_tokenizer``), so ComfyUI must be importable. For ``swd_core.run``.
    """
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    import comfy.sd1_clip

    transformer = build_transformer(seed) if transformer is None else transformer
    comfy_dir = Path(comfy.sd1_clip.__file__).resolve().parent
    # ComfyUI's copy says model_max_length 8192 (it chunks prompts itself); FluxPipeline pads to it.
    clip_tokenizer = CLIPTokenizer.from_pretrained(str(comfy_dir / "sd1_tokenizer"), model_max_length=77)
    t5_tokenizer = T5TokenizerFast.from_pretrained(str(comfy_dir / "text_encoders" / "t5_tokenizer"))
    with seeded(_sub_seed(seed, "clip_l")):
        clip = CLIPTextModel(CLIPTextConfig(
            hidden_size=transformer.config.pooled_projection_dim, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, vocab_size=clip_tokenizer.vocab_size, max_position_embeddings=77,
            bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id))
    with seeded(_sub_seed(seed, "full")):
        t5 = T5EncoderModel(T5Config(
            d_model=transformer.config.joint_attention_dim, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
            vocab_size=len(t5_tokenizer), is_gated_act=True, dense_act_fn="gelu_new"))
    with seeded(_sub_seed(seed, "vae")):
        vae = AutoencoderKL(**{**VAE_CONFIG, "block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4,
                               "layers_per_block": 1})
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae.eval(), text_encoder=clip.eval(),
                        tokenizer=clip_tokenizer, text_encoder_2=t5.eval(), tokenizer_2=t5_tokenizer,
                        transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------- files (workflows)

def full_width_state_dict(seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> dict:
    """FLUX.1-dev-width transformer (1 double + 1 single block), BFL/ComfyUI keys, ``dtype``.

    About 0.55 G parameters: 1.09 GB in bf16. The diffusers model is built on the meta device
    (shapes only); the weights are drawn straight into ``dtype``, then renamed to the layout of
    the real ``flux1-dev.safetensors`` (``flux_keys``).
    """
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in FluxTransformer2DModel(**FULL_WIDTH_CONFIG).state_dict().items()}
    return comfy_state_dict(random_state_dict(shapes, _sub_seed(seed, "full"), dtype), clone=False)


def vae_state_dict(seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> dict:
    """FLUX.1's 16-channel VAE (diffusers ``AutoencoderKL``), LDM keys as in ``ae.safetensors``."""
    from diffusers import AutoencoderKL

    import comfy.diffusers_convert

    with seeded(_sub_seed(seed, "vae")):
        vae = AutoencoderKL(**VAE_CONFIG)
    sd = comfy.diffusers_convert.convert_vae_state_dict(vae.state_dict())
    return {k: v.to(dtype) for k, v in sd.items()}


def write(out_dir: Path, seed: int, log) -> None:
    """Write this family's stand-ins into the models folder ``out_dir`` (each file freed before the next)."""
    from ..comfy_host import put_comfyui_first

    put_comfyui_first(paths.COMFYUI)  # ComfyUI's own VAE key conversion
    out_dir = Path(out_dir)
    sd = full_width_state_dict(seed)
    save_safetensors(sd, out_dir / TRANSFORMER_FILE)
    del sd
    log("flux transformer")
    save_safetensors(vae_state_dict(seed), out_dir / VAE_FILE)
    log("flux vae")
    write_lora(out_dir, seed)
    log("flux lora")


def write_lora(models_dir, seed: int = 0, **lora_config_kwargs) -> Path:
    """The SwD-FLUX PEFT LoRA for the full-width file stand-in, at ``loras/swd_flux``.

    PEFT's ``get_peft_model`` wraps a FLUX.1-dev-width diffusers model built on the meta
    device; ``to_empty`` gives it storage that is never written (so never resident), the LoRA
    tensors alone are drawn (seeded, N(0, 1/fan_in)) and PEFT's ``save_pretrained`` writes them.
    """
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig, get_peft_model

    out_dir = Path(models_dir) / LORA_DIR
    with torch.device("meta"):
        base = FluxTransformer2DModel(**FULL_WIDTH_CONFIG)
    peft_model = get_peft_model(base, LoraConfig(**{**LORA_CONFIG, **lora_config_kwargs}))
    peft_model.to_empty(device="cpu")
    lora = {n: p for n, p in peft_model.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    values = random_state_dict({n: p.shape for n, p in lora.items()}, _sub_seed(seed, "lora"), torch.float32)
    with torch.no_grad():
        for n, p in lora.items():
            p.copy_(values[n])
    return save_peft(peft_model, out_dir)
