"""diffusers FLUX.1 key names -> the BFL layout of the published files, written out here.

Black Forest Labs' ``flux1-dev.safetensors`` (and XLabs' ControlNets, which use its names) store
``double_blocks.N`` / ``single_blocks.N`` with fused ``qkv`` / ``linear1`` projections, RMSNorm
weights named ``.scale`` and the final AdaLN's halves in (shift, scale) order. diffusers stores
separate q/k/v, ``.weight`` norms and (scale, shift). The stand-ins are written in the published
layout by this table, not by the host's own converter: ComfyUI's converter is an implementation
detail that changes between versions (since 0.13 it names the norms ``.weight``, a name no
published file uses and that ComfyUI's XLabs ControlNet detection does not recognise), and a
fixture must not change with the host under test. Checked against ComfyUI 0.3.75's
``comfy.utils.flux_to_diffusers``, which wrote the same layout (tests/tools/test_standins.py).
"""
from __future__ import annotations

import re

import torch

#: whole-model keys: diffusers name -> BFL name
BASIC = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
    "proj_out": "final_layer.linear",
    "norm_out.linear": "final_layer.adaLN_modulation.1",  # halves swapped
    "controlnet_x_embedder": "pos_embed_input",  # XLabs ControlNets
}
#: ``transformer_blocks.N.<diffusers>`` -> ``double_blocks.N.<BFL>`` (q/k/v are fused separately)
DOUBLE = {
    "attn.to_out.0": "img_attn.proj",
    "attn.to_add_out": "txt_attn.proj",
    "norm1.linear": "img_mod.lin",
    "norm1_context.linear": "txt_mod.lin",
    "ff.net.0.proj": "img_mlp.0",
    "ff.net.2": "img_mlp.2",
    "ff_context.net.0.proj": "txt_mlp.0",
    "ff_context.net.2": "txt_mlp.2",
}
DOUBLE_NORMS = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
}
#: ``single_transformer_blocks.N.<diffusers>`` -> ``single_blocks.N.<BFL>``
SINGLE = {"norm.linear": "modulation.lin", "proj_out": "linear2"}
SINGLE_NORMS = {"attn.norm_q.weight": "norm.query_norm.scale", "attn.norm_k.weight": "norm.key_norm.scale"}
#: fused projections: BFL name -> the diffusers parts concatenated along the output dimension
DOUBLE_FUSED = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
SINGLE_FUSED = {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")}

_BLOCK = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$")


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    shift, scale = t.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def bfl_state_dict(sd: dict) -> dict:
    """``sd`` (a diffusers ``FluxTransformer2DModel`` / ``FluxControlNetModel`` state dict without
    the ControlNet-only ``controlnet_blocks`` and stem) in the BFL layout; ``sd`` is not modified
    (renamed tensors are shared with it, fused and swapped ones are new). A key this table does not
    know raises ``KeyError`` (nothing is dropped silently)."""
    out, blocks = {}, {}
    for key, value in sd.items():
        m = _BLOCK.match(key)
        if m:
            blocks.setdefault((m[1], int(m[2])), {})[m[3]] = value
            continue
        module, param = key.rsplit(".", 1)
        if module not in BASIC:
            raise KeyError(f"no BFL name for {key!r}")
        out[f"{BASIC[module]}.{param}"] = _swap_halves(value) if module == "norm_out.linear" else value
    for (kind, index), parts in sorted(blocks.items()):
        double = kind == "transformer_blocks"
        prefix = f"{'double_blocks' if double else 'single_blocks'}.{index}"
        plain, norms, fused = (DOUBLE, DOUBLE_NORMS, DOUBLE_FUSED) if double else (SINGLE, SINGLE_NORMS, SINGLE_FUSED)
        used = set()
        for bfl, sources in fused.items():
            for param in ("weight", "bias"):
                names = [f"{s}.{param}" for s in sources]
                if all(n in parts for n in names):
                    out[f"{prefix}.{bfl}.{param}"] = torch.cat([parts[n] for n in names], dim=0)
                    used.update(names)
        for name, bfl in norms.items():
            if name in parts:
                out[f"{prefix}.{bfl}"] = parts[name]
                used.add(name)
        for name, value in parts.items():
            if name in used:
                continue
            module, param = name.rsplit(".", 1)
            if module not in plain:
                raise KeyError(f"no BFL name for {kind}.{index}.{name!r}")
            out[f"{prefix}.{plain[module]}.{param}"] = value
    return out
