"""FLUX.1 ControlNet stand-ins: diffusers ``FluxControlNetModel`` weights in the two layouts ComfyUI loads.

* **InstantX / diffusers layout** (``InstantX/FLUX.1-dev-Controlnet-Canny``'s
  ``diffusion_pytorch_model.safetensors``, the Union and Shakker-Labs files): the state dict of a
  diffusers ``FluxControlNetModel`` as saved (``transformer_blocks.N``, ``controlnet_blocks.N``,
  ``controlnet_x_embedder``...). ComfyUI 0.3.75 sends a file with ``controlnet_blocks.0.weight`` and
  ``controlnet_x_embedder.weight`` to ``load_controlnet_flux_instantx``: ``ControlNetFlux(latent_input=
  True)``, the hint VAE-encoded (``latent_formats.Flux``).
* **XLabs layout** (``XLabs-AI/flux-controlnet-canny-v3``'s ``flux-canny-controlnet-v3.safetensors``):
  BFL key names (``double_blocks.N``, ``img_in``, ``pos_embed_input``) plus ``input_hint_block.{0..14}``
  (a pixel-space conv stem). ComfyUI sends ``controlnet_blocks.0.weight`` +
  ``double_blocks.0.img_attn.norm.key_norm.scale`` to ``load_controlnet_flux_xlabs_mistoline``: the hint
  is pixels, resized per latent size, no VAE. diffusers has no loader for this key layout, but its
  ``FluxControlNetModel(conditioning_embedding_channels=16)`` is the same network (its
  ``ControlNetConditioningEmbedding`` with four 16-wide levels is XLabs' conv stem, layer for layer):
  the XLabs stand-in is such a model written with XLabs' names (`xlabs_state_dict`: the BFL names of
  ``flux_keys``, norms as ``.scale`` as in XLabs' files, the stem renamed), so a diffusers reference
  runs the same weights.

Two sizes, as in ``harness.standins.flux``:

* **Small** (`build_controlnet`, `comfy_controlnet`): the width of ``flux.SMALL_CONFIG``, for parity
  tests. ComfyUI's FLUX detection fixes 24 heads and RoPE axes 16/56/56 (hence width 3072); only those
  two fields are set from the diffusers config while ComfyUI's own ``load_controlnet_state_dict`` loads
  the small state dict (`small_flux_detection`).
* **Files** (`write`, names in ``harness.paths``, in ``models/controlnet``): FLUX.1-dev width (the only
  width ComfyUI's detection accepts), one double block, no single blocks (ComfyUI's ``ControlNetFlux``
  needs at least one double block), text widths of the FLUX file stand-in (CLIP-L's 768), bf16 as
  published: about 0.39 G parameters, 0.77 GB each.

diffusers zero-initialises ``controlnet_blocks``, ``controlnet_single_blocks``, ``controlnet_x_embedder``
(InstantX) and the stem's ``conv_out`` (a fresh ControlNet adds nothing): here they are drawn too, so
the ControlNet changes the result.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .. import paths
from .common import random_state_dict, save_safetensors, seeded
from .flux import FULL_WIDTH_CONFIG, SMALL_CONFIG, comfy_state_dict

INSTANTX_FILE = f"controlnet/{paths.FLUX_CONTROLNET_INSTANTX}"
XLABS_FILE = f"controlnet/{paths.FLUX_CONTROLNET_XLABS}"
#: ``{name: path in the models folder}`` this family writes (for the cache manifest).
FILES = {"flux_controlnet_instantx": INSTANTX_FILE, "flux_controlnet_xlabs": XLABS_FILE}

_CONFIG_KEYS = ("patch_size", "in_channels", "attention_head_dim", "num_attention_heads", "joint_attention_dim",
                "pooled_projection_dim", "guidance_embeds", "axes_dims_rope")
#: A small ControlNet for the small FLUX (``flux.SMALL_CONFIG``'s widths): 2 double + 4 single blocks, so
#: ComfyUI's spreading of fewer ControlNet outputs over the model's blocks is exercised.
SMALL_CONTROLNET_CONFIG = dict({k: SMALL_CONFIG[k] for k in _CONFIG_KEYS}, num_layers=2, num_single_layers=4)
#: The small FLUX with FLUX.1-dev's block counts (19 double, 38 single): ComfyUI's ``ControlNetFlux``
#: spreads its outputs over 19 and 38 blocks whatever the model has (``main_model_double/single``), diffusers
#: over the model's own count; they agree on FLUX.1-dev's counts (a 2-block model would differ).
PARITY_TRANSFORMER_OVERRIDES = dict(num_layers=19, num_single_layers=38)
#: The files: FLUX.1-dev width and the file stand-in transformer's text widths, one double block.
FILE_CONTROLNET_CONFIG = dict({k: FULL_WIDTH_CONFIG[k] for k in _CONFIG_KEYS}, num_layers=1, num_single_layers=0)
XLABS_HINT_CHANNELS = 16  # ``conditioning_embedding_channels``: XLabs' stem ends in 16 channels
#: XLabs' ControlNets have no single blocks (ComfyUI cycles an XLabs layout's outputs over the model's
#: blocks, diffusers repeats only the double ones): the XLabs stand-ins have none either. diffusers packs
#: the stem's output (16 channels at the latent's size) into tokens of ``patch_size`` squared pixels:
#: 2 gives the transformer's 2x2 tokens of 64 (with FLUX's usual ``patch_size=1``, where the latent comes
#: packed already, the stem's tokens would not fit ``controlnet_x_embedder``).
XLABS_OVERRIDES = dict(conditioning_embedding_channels=XLABS_HINT_CHANNELS, num_single_layers=0, patch_size=2)
_SEED_OFFSETS = {"instantx": 6, "xlabs": 7}  # beside flux's sub-seeds 0..4 and sd3_controlnet's 5


def _sub_seed(seed: int, layout: str) -> int:
    return seed * 16 + _SEED_OFFSETS[layout]


def _zero_initialised(model) -> list:
    """The layers diffusers zero-initialises (they get a random init here)."""
    layers = [*model.controlnet_blocks, *model.controlnet_single_blocks, model.controlnet_x_embedder]
    if model.input_hint_block is not None:
        layers.append(model.input_hint_block.conv_out)
    return layers


def build_controlnet(seed: int = 0, layout: str = "instantx", **overrides):
    """Random-init diffusers ``FluxControlNetModel`` (fp32, eval), ``SMALL_CONTROLNET_CONFIG`` + ``overrides``;
    ``layout`` ``"xlabs"`` adds XLabs' pixel stem and drops the single blocks (``XLABS_OVERRIDES``)."""
    from diffusers import FluxControlNetModel

    extra = XLABS_OVERRIDES if layout == "xlabs" else {}
    with seeded(_sub_seed(seed, layout)):
        model = FluxControlNetModel(**{**SMALL_CONTROLNET_CONFIG, **extra, **overrides})
        for layer in _zero_initialised(model):
            layer.reset_parameters()
    return model.eval().requires_grad_(False)


def instantx_state_dict(model_or_sd) -> dict:
    """The diffusers layout (InstantX's files): the model's own state dict."""
    sd = model_or_sd if isinstance(model_or_sd, dict) else model_or_sd.state_dict()
    return {k: v.detach().contiguous() for k, v in sd.items()}


#: diffusers' ``ControlNetConditioningEmbedding`` (four 16-wide levels) -> XLabs' ``input_hint_block``
#: ``nn.Sequential`` indices (its convolutions sit at the even indices, SiLUs between).
_STEM = {"conv_in": 0, **{f"blocks.{i}": 2 * (i + 1) for i in range(6)}, "conv_out": 14}


def xlabs_state_dict(model_or_sd, clone: bool = True) -> dict:
    """The XLabs layout: the diffusers -> BFL renaming (``flux.comfy_state_dict``) of the
    transformer part, ``controlnet_blocks.N`` kept, the stem renamed to ``input_hint_block.N``."""
    sd = instantx_state_dict(model_or_sd)
    stem = {k: sd.pop(k) for k in [k for k in sd if k.startswith("input_hint_block.")]}
    rest = {k: sd.pop(k) for k in [k for k in sd if k.startswith(("controlnet_blocks.", "controlnet_single_blocks."))]}
    out = comfy_state_dict(sd, clone=clone)  # controlnet_x_embedder -> pos_embed_input, blocks, embedders
    out.update(rest)
    for key, value in stem.items():
        layer, param = key[len("input_hint_block."):].rsplit(".", 1)
        out[f"input_hint_block.{_STEM[layer]}.{param}"] = value
    return out


@contextlib.contextmanager
def small_flux_detection(num_heads: int, axes_dim):
    """ComfyUI's FLUX detection with the head count and RoPE axes of a small model (it fixes 24 and
    16/56/56 for FLUX.1); everything else is detected from the weights as usual."""
    import comfy.model_detection

    real = comfy.model_detection.detect_unet_config

    def detect(state_dict, key_prefix, *args, **kwargs):
        config = real(state_dict, key_prefix, *args, **kwargs)
        if config is not None and config.get("image_model") == "flux":
            config.update(num_heads=num_heads, axes_dim=list(axes_dim))
        return config

    comfy.model_detection.detect_unet_config = detect
    try:
        yield
    finally:
        comfy.model_detection.detect_unet_config = real


def comfy_controlnet(state_dict: dict, config: dict = SMALL_CONTROLNET_CONFIG):
    """A small ControlNet's ``state_dict`` (either layout) through ComfyUI's own
    ``comfy.controlnet.load_controlnet_state_dict`` (what ``ControlNetLoader`` calls on a file)."""
    import comfy.controlnet

    with small_flux_detection(config["num_attention_heads"], config["axes_dims_rope"]):
        return comfy.controlnet.load_controlnet_state_dict({k: v.clone() for k, v in state_dict.items()})


# --------------------------------------------------------------------------- files (workflows)

def file_state_dict(layout: str, seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> dict:
    """A FLUX.1-dev-width ControlNet (``FILE_CONTROLNET_CONFIG``) in ``layout`` ("instantx" / "xlabs"),
    drawn tensor by tensor in ``dtype`` (``common.random_state_dict``) on a meta-device diffusers model."""
    from diffusers import FluxControlNetModel

    extra = XLABS_OVERRIDES if layout == "xlabs" else {}
    with torch.device("meta"):
        model = FluxControlNetModel(**{**FILE_CONTROLNET_CONFIG, **extra})
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    sd = random_state_dict(shapes, _sub_seed(seed, layout), dtype)
    return instantx_state_dict(sd) if layout == "instantx" else xlabs_state_dict(sd, clone=False)


def write(out_dir: Path, seed: int, log) -> None:
    """Write both FLUX ControlNet stand-ins into the models folder ``out_dir`` (one at a time)."""
    for layout, rel in (("instantx", INSTANTX_FILE), ("xlabs", XLABS_FILE)):
        save_safetensors(file_state_dict(layout, seed), Path(out_dir) / rel)
        log(f"flux controlnet ({layout} layout)")
