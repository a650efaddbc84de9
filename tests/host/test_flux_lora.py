"""A FLUX SwD PEFT LoRA through ComfyUI's own LoRA loading equals PEFT on the diffusers model.

ComfyUI's FLUX key map spells the diffusers names ``transformer.<name>`` (slices of the fused
``qkv``/``linear1`` weights by offset) and has no ``base_model.model.`` spelling (upstream
swd#10); ``nodes/lora_keys.py`` adds it as aliases of ComfyUI's own entries.
"""
import copy
import importlib

import pytest
import torch

from harness import peft_lora
from harness.comfy_host import Host
from harness.reference import flux as reference
from harness.standins import flux

SIGMA = 0.7
GUIDANCE = 4.5


@pytest.fixture(scope="module")
def small(host, tmp_path_factory):
    """(diffusers transformer, ComfyUI ModelPatcher with the same weights, PEFT LoRA folder)."""
    import comfy.model_management

    transformer = flux.build_transformer(seed=0)
    patcher = flux.comfy_model(transformer)
    lora_dir = flux.save_peft_lora(transformer, tmp_path_factory.mktemp("flux_lora") / "swd_flux", seed=0)
    yield transformer, patcher, lora_dir
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def lora_keys(host):
    return importlib.import_module(host.pack.__name__ + ".nodes.lora_keys")


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2, 16, 16, 24, generator=g), torch.randn(1, 7, 64, generator=g),
            torch.randn(1, 32, generator=g))


def read_lora(host, lora_dir):
    """The LoRA's tensors with PEFT's per-module scale as ``.alpha`` keys (SwDLoraLoader's way)."""
    import comfy.utils

    swd_lora = importlib.import_module(host.swd_core.__name__ + ".lora")
    sd = comfy.utils.load_torch_file(str(lora_dir / "adapter_model.safetensors"), safe_load=True)
    return swd_lora.with_peft_alphas(sd, swd_lora.read_adapter_config(lora_dir / "adapter_config.json"))


def comfy_x0(patcher, inputs):
    x, ctx, pooled = inputs
    b = x.shape[0]
    return Host.x0(patcher, x, SIGMA, c_crossattn=ctx.expand(b, -1, -1), y=pooled.expand(b, -1),
                   guidance=torch.full((b,), GUIDANCE))


def diffusers_x0(transformer, inputs):
    x, ctx, pooled = inputs
    b = x.shape[0]
    v = reference.velocity(transformer, x, SIGMA, ctx.expand(b, -1, -1), pooled.expand(b, -1),
                           torch.zeros(ctx.shape[1], 3), GUIDANCE)
    return x - SIGMA * v


def test_stock_key_map_leaves_every_peft_key_unmatched(host, small):
    import comfy.lora

    _, patcher, lora_dir = small
    lora = read_lora(host, lora_dir)
    stock = comfy.lora.model_lora_keys_unet(patcher.model, {})
    modules = sorted(k[: -len(".lora_A.weight")] for k in lora if k.endswith(".lora_A.weight"))
    # per double block 14, per single block 6, + context_embedder, proj_out, norm_out
    assert len(modules) == 2 * 14 + 2 * 6 + 3
    assert all(m.startswith("base_model.model.") for m in modules)
    assert [m for m in modules if m in stock] == []
    assert all("transformer." + m[len("base_model.model."):] in stock for m in modules)  # the gap is the prefix only
    assert comfy.lora.load_lora(lora, stock, log_missing=False) == {}


def test_peft_aliases_reuse_comfyui_entries(host, small, lora_keys):
    import comfy.lora

    _, patcher, _ = small
    stock = comfy.lora.model_lora_keys_unet(patcher.model, {})
    mapped = lora_keys.peft_key_map(patcher.model, dict(stock))
    added = {k: v for k, v in mapped.items() if k not in stock}
    assert added and all(k.startswith("base_model.model.") for k in added)
    assert all(v == stock["transformer." + k[len("base_model.model."):]] for k, v in added.items())
    # fused qkv slices and the single blocks' linear1 (q, k, v, proj_mlp) keep ComfyUI's offsets
    h = patcher.model.model_config.unet_config["hidden_size"]
    assert mapped["base_model.model.transformer_blocks.1.attn.to_k"] == (
        "diffusion_model.double_blocks.1.img_attn.qkv.weight", (0, h, h))
    assert mapped["base_model.model.single_transformer_blocks.0.proj_mlp"] == (
        "diffusion_model.single_blocks.0.linear1.weight", (0, 3 * h, 4 * h))


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_flux_peft_lora_matches_peft(host, small, lora_keys, inputs, strength):
    import comfy.lora
    import comfy.model_management

    transformer, patcher, lora_dir = small
    lora = read_lora(host, lora_dir)
    key_map = lora_keys.peft_key_map(patcher.model, comfy.lora.model_lora_keys_unet(patcher.model, {}))
    loaded = comfy.lora.load_lora(lora, key_map)
    n_modules = sum(k.endswith(".lora_A.weight") for k in lora)
    assert len(loaded) == n_modules  # every module maps: one patch per (weight, offset)
    patched = patcher.clone()
    applied = patched.add_patches(loaded, strength)
    assert len(applied) == n_modules

    peft = peft_lora.peft_scaled(transformer, lora_dir, strength)
    merged = flux.comfy_state_dict(copy.deepcopy(peft).merge_and_unload().state_dict())
    plain = flux.comfy_state_dict(transformer.state_dict())
    comfy.model_management.load_models_gpu([patched])
    state = patched.model.diffusion_model.state_dict()
    changed = [k for k in merged if (merged[k] - plain[k]).abs().max() > 1e-3]
    # every LoRA target changed, fused ones included (the double blocks' qkv, the single blocks' linear1)
    assert {"double_blocks.0.img_attn.qkv.weight", "double_blocks.1.txt_attn.qkv.weight",
            "single_blocks.1.linear1.weight", "single_blocks.0.linear2.weight", "txt_in.weight",
            "final_layer.linear.weight", "final_layer.adaLN_modulation.1.weight"} <= set(changed)
    assert len(changed) == 2 * 10 + 2 * 3 + 3  # per double block 10 fused weights, per single block 3
    # the published files name the RMSNorms' parameter `.scale`; ComfyUI 0.33's modules call it `.weight`
    state = {k if k in merged else k.removesuffix(".weight") + ".scale": v for k, v in state.items()}
    assert merged.keys() <= state.keys()
    assert max((state[k].float() - merged[k]).abs().max().item() for k in merged) < 1e-5

    ours, ref = comfy_x0(patched, inputs), diffusers_x0(peft, inputs)
    assert (ref - diffusers_x0(transformer, inputs)).abs().max().item() > 1e-2  # the LoRA shows
    assert (ours - ref).abs().max().item() < 1e-5
    comfy.model_management.unload_all_models()


def test_two_swd_loras_on_flux_stack_as_peft_with_both_adapters(host, small, inputs, loras):
    """SwD LoRA Loader twice on FLUX (fused qkv/linear1 slices patched by both) = PEFT with both
    adapters active, the second at strength 0.5."""
    import shutil

    import comfy.model_management

    transformer, patcher, lora_dir = small
    second = flux.save_peft_lora(transformer, loras / "style", seed=9, r=2, lora_alpha=5)
    shutil.copytree(lora_dir, loras / "swd_flux")
    node = host.node("SwDLoraLoader")
    stacked = node.execute(node.execute(patcher, "swd_flux/adapter_model.safetensors", 1.0).args[0],
                           "style/adapter_model.safetensors", 0.5).args[0]
    peft = peft_lora.peft_stacked(transformer, [(lora_dir, 1.0), (second, 0.5)])
    ours, ref = comfy_x0(stacked, inputs), diffusers_x0(peft, inputs)
    assert (ref - diffusers_x0(transformer, inputs)).abs().max().item() > 1e-2
    assert (ours - ref).abs().max().item() < 1e-5
    comfy.model_management.unload_all_models()
