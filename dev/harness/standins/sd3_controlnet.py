"""SD3 ControlNet stand-in: a diffusers ``SD3ControlNetModel`` state dict, tiny, random weights.

The format is that of the SD3 ControlNets published in diffusers layout (InstantX's
``SD3-Controlnet-Canny/Pose/Tile``, ``diffusion_pytorch_model.safetensors``): one safetensors
file whose keys are ``SD3ControlNetModel``'s (``pos_embed``, ``pos_embed_input``,
``context_embedder``, ``time_text_embed``, ``transformer_blocks.N``, ``controlnet_blocks.N``).
ComfyUI 0.3.75's ``comfy.controlnet.load_controlnet_state_dict`` sends a file with
``controlnet_blocks.0.weight`` + ``pos_embed_input.proj.weight`` and without
``transformer_blocks.0.adaLN_modulation.1.bias`` to ``load_controlnet_mmdit`` (its "SD3
diffusers controlnet"): a ``comfy.cldm.mmdit.ControlNet`` whose hint is VAE-encoded.

Stability's own ``sd3.5_large_controlnet_{canny,depth,blur}.safetensors`` (in
``stabilityai/stable-diffusion-3.5-controlnets``) are another layout (``transformer_blocks.N.
adaLN_modulation``, ``control_type``): ComfyUI loads those with ``load_controlnet_sd35`` into a
``ControlNetSD35`` (``comfy.cldm.dit_embedder.ControlNetEmbedder``). Both classes inherit
``ControlNet.get_control``, the per-latent-size hint rebuild this stand-in is for; the SD3.5
embedder itself is not exercised by this stand-in.

The config matches the SD3.5 stand-in transformer (``harness.standins.sd3.TRANSFORMER_CONFIG``:
hidden size 128, qk RMS norm, 4096-wide context, 2048 pooled, ``pos_embed_max_size`` 192) with
one transformer block. diffusers zero-initialises ``pos_embed_input`` and ``controlnet_blocks``
(a fresh ControlNet adds nothing): here they get a seeded random init too, so the ControlNet
changes the result.
"""
from __future__ import annotations

from pathlib import Path

from .. import paths
from .common import random_state_dict, save_safetensors, seeded
from .sd3 import TRANSFORMER_CONFIG

CONTROLNET_FILE = f"controlnet/{paths.SD3_CONTROLNET}"

CONTROLNET_CONFIG = dict(
    {k: TRANSFORMER_CONFIG[k] for k in (
        "sample_size", "patch_size", "in_channels", "attention_head_dim", "num_attention_heads",
        "joint_attention_dim", "caption_projection_dim", "pooled_projection_dim", "out_channels",
        "pos_embed_max_size", "qk_norm")},
    num_layers=1,
    extra_conditioning_channels=0,
)
_SEED_OFFSET = 5  # beside harness.standins.sd3's sub-seeds 0..3


def build_controlnet(seed: int = 0, **overrides):
    """Random-init diffusers ``SD3ControlNetModel`` (fp32, eval mode), nothing zero-initialised."""
    from diffusers import SD3ControlNetModel

    cfg = {**CONTROLNET_CONFIG, **overrides}
    with seeded(seed * 16 + _SEED_OFFSET):
        model = SD3ControlNetModel(**cfg)
        for block in model.controlnet_blocks:
            block.reset_parameters()
        model.pos_embed_input.proj.reset_parameters()
    return model.eval().requires_grad_(False)


def state_dict(model) -> dict:
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


#: ``{name: path inside the models folder}`` this family writes (for the cache manifest).
FILES = {"sd3_controlnet": CONTROLNET_FILE, "sd35_controlnet": f"controlnet/{paths.SD35_CONTROLNET}"}


def write(out_dir: Path, seed: int, log) -> None:
    """Write the SD3 ControlNet stand-ins (diffusers and Stability layouts) into the models folder ``out_dir``."""
    save_safetensors(state_dict(build_controlnet(seed)), Path(out_dir) / CONTROLNET_FILE)
    log("sd3 controlnet")
    write_sd35(out_dir, seed, log)


# --------------------------------------------------------------------------- Stability's SD3.5 layout

SD35_CONTROLNET_FILE = f"controlnet/{paths.SD35_CONTROLNET}"
#: ``control_type`` in Stability's files: 0 blur, 1 canny, 2 depth (ComfyUI preprocesses canny and depth).
CANNY = 1


def sd35_state_dict(seed: int = 0, control_type: int = CANNY) -> dict:
    """A ControlNet in Stability's SD3.5 layout (``sd3.5_large_controlnet_*.safetensors``) for the stand-in.

    Built as ComfyUI builds that layout (``comfy.cldm.dit_embedder.ControlNetEmbedder`` with the
    arguments of ``comfy.controlnet.load_controlnet_sd35``) on the meta device: one block at the
    stand-in transformer's width (64 per head, so ``y_embedder``'s width tells ComfyUI the head
    count), random weights (``common.random_state_dict``), written with the file's key names
    (``comfy.utils.MMDIT_MAP_BASIC``, ComfyUI's name -> the file's) and its ``control_type``. As in
    Stability's files there is no ``x_embedder``: ComfyUI lends the model's at run time.
    """
    import torch

    import comfy.cldm.dit_embedder
    import comfy.ops
    import comfy.utils

    heads = TRANSFORMER_CONFIG["num_attention_heads"]
    with torch.device("meta"):
        model = comfy.cldm.dit_embedder.ControlNetEmbedder(
            img_size=None, patch_size=2, in_chans=16, num_layers=1, main_model_double=heads, double_y_emb=False,
            attention_head_dim=64, num_attention_heads=heads, adm_in_channels=2048,
            device="meta", dtype=torch.float32, operations=comfy.ops.disable_weight_init)
    shapes = {k: v.shape for k, v in model.state_dict().items() if not k.startswith("x_embedder.")}
    sd = random_state_dict(shapes, seed * 16 + _SEED_OFFSET + 1, torch.float32)
    to_file = {entry[0]: entry[1] for entry in comfy.utils.MMDIT_MAP_BASIC}  # load_controlnet_sd35 reads [1] as [0]
    out = {to_file.get(k, k): v for k, v in sd.items()}
    out["control_type"] = torch.tensor([float(control_type)])
    return out


def write_sd35(out_dir: Path, seed: int, log) -> None:
    from ..comfy_host import put_comfyui_first

    put_comfyui_first(paths.COMFYUI)
    save_safetensors(sd35_state_dict(seed), Path(out_dir) / SD35_CONTROLNET_FILE)
    log("sd3.5 controlnet (Stability layout)")
