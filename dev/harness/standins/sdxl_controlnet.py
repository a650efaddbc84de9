"""SDXL ControlNet stand-ins: random weights in the LDM ControlNet layout ComfyUI's ``ControlNetLoader`` reads.

* **File** (``write``): an SDXL ControlNet for the SDXL checkpoint stand-in (``harness.standins.sdxl``),
  which ComfyUI detects as SDXL and the shipped SDXL ControlNet workflow's stand-in run loads;
* **Small** (``build_controlnet``, ``controlnet_ldm_state_dict``): a diffusers ``ControlNetModel`` for the
  small SDXL parity UNet and the same weights in the LDM layout, for the diffusers parity test.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import paths
from .common import random_state_dict
from .sdxl import CHECKPOINT_UNET_CONFIG, sub_seed

CONTROLNET_FILE = f"controlnet/{paths.SDXL_CONTROLNET}"
FILES = {"sdxl_controlnet": CONTROLNET_FILE}


#: ComfyUI builds a ControlNet loaded from an LDM-layout file of an unknown (small) size with
#: ``supported_models_base.BASE``'s 64-channel heads, so the small ControlNet's attention is given
#: 64-channel heads on both sides (a ControlNet's heads need not match its UNet's).
CONTROLNET_HEAD_CHANNELS = 64


def build_controlnet(unet, seed: int = 0):
    """A diffusers ``ControlNetModel`` for the small ``unet`` (its encoder's layout, text-time added
    conditioning, `CONTROLNET_HEAD_CHANNELS`-wide heads), random weights drawn by
    ``random_state_dict`` (the zero-initialised output convolutions too, so that it acts), fp32, eval."""
    from diffusers import ControlNetModel

    config = unet.config
    keep = ("in_channels", "down_block_types", "block_out_channels", "layers_per_block",
            "transformer_layers_per_block", "cross_attention_dim", "use_linear_projection", "addition_embed_type",
            "addition_time_embed_dim", "projection_class_embeddings_input_dim", "norm_num_groups")
    heads = tuple(max(1, c // CONTROLNET_HEAD_CHANNELS) for c in config.block_out_channels)
    model = ControlNetModel(**{k: config[k] for k in keep}, attention_head_dim=heads)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(random_state_dict(shapes, sub_seed(seed, "file") + 3, torch.float32))
    return model.eval().requires_grad_(False)


def controlnet_ldm_state_dict(controlnet, unet_config: dict) -> dict:
    """A diffusers SDXL ``ControlNetModel``'s weights in the LDM ControlNet layout that ComfyUI's
    ``ControlNetLoader`` reads at any size (``input_hint_block``, ``zero_convs``, ``middle_block_out``).

    The encoder by ComfyUI's own map (``comfy.utils.unet_to_diffusers``); the ControlNet's own layers
    by the renames ``comfy.controlnet.load_controlnet_state_dict`` applies to diffusers-layout files
    (it does so only for the full-size configurations its detection knows, hence this file).
    """
    import comfy.utils

    sd = dict(controlnet.state_dict())
    mapping = comfy.utils.unet_to_diffusers(unet_config)
    mapping["controlnet_mid_block.weight"] = "middle_block_out.0.weight"
    mapping["controlnet_mid_block.bias"] = "middle_block_out.0.bias"
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("controlnet_down_blocks.")})
    hint = sorted({int(k.split(".")[2]) for k in sd if k.startswith("controlnet_cond_embedding.blocks.")})
    for s in (".weight", ".bias"):
        mapping.update({f"controlnet_down_blocks.{i}{s}": f"zero_convs.{i}.0{s}" for i in blocks})
        mapping[f"controlnet_cond_embedding.conv_in{s}"] = f"input_hint_block.0{s}"
        mapping.update({f"controlnet_cond_embedding.blocks.{i}{s}": f"input_hint_block.{2 * (i + 1)}{s}" for i in hint})
        mapping[f"controlnet_cond_embedding.conv_out{s}"] = f"input_hint_block.{2 * (len(hint) + 1)}{s}"
    missing = set(sd) - set(mapping)
    if missing:
        raise ValueError(f"no LDM name for {sorted(missing)[:5]}")
    return {mapping[k]: v for k, v in sd.items()}


def controlnet_state_dict(seed: int = 0, dtype: torch.dtype = torch.float16) -> dict:
    """An SDXL ControlNet for the checkpoint stand-in, in the LDM layout of the SDXL ControlNets people load
    with ``ControlNetLoader`` (``input_hint_block``, ``zero_convs``, ``middle_block_out``; ComfyUI's
    detection calls its encoder SDXL). ComfyUI's ``comfy.cldm.cldm.ControlNet`` for
    ``CHECKPOINT_UNET_CONFIG`` (a 3-channel pixel hint), built on the meta device, random weights
    (the zero convolutions too, so that it acts)."""
    import comfy.cldm.cldm
    import comfy.ops

    config = {k: v for k, v in CHECKPOINT_UNET_CONFIG.items() if k != "out_channels"}
    with torch.device("meta"):
        model = comfy.cldm.cldm.ControlNet(**config, hint_channels=3, device="meta",
                                           operations=comfy.ops.disable_weight_init)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    return random_state_dict(shapes, sub_seed(seed, "file") + 2, dtype)


def write(out_dir: Path, seed: int, log) -> None:
    """Write the SDXL ControlNet stand-in into the models folder ``out_dir``."""
    from ..comfy_host import put_comfyui_first
    from .common import save_safetensors

    put_comfyui_first(paths.COMFYUI)
    save_safetensors(controlnet_state_dict(seed), Path(out_dir) / CONTROLNET_FILE)
    log("sdxl controlnet")
