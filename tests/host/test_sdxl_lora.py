"""The SDXL SwD PEFT LoRA through SwD LoRA Loader equals PEFT on the diffusers UNet; LoRAs of
other families on SDXL (and SDXL's on others) are named, nothing half-applied.

ComfyUI's SDXL key map spells the diffusers names ``unet.<name>`` with ``.processor.to_q`` and
``.processor.to_out`` and has no ``base_model.model.`` spelling; ``nodes/lora_keys.py`` adds
it. The stand-in LoRA targets linear layers and the ResNets' convolutions (4-D pairs).
"""

import pytest
import safetensors.torch
import torch

from harness import paths, peft_lora
from harness.standins import flux as flux_standins
from harness.standins import sdxl


@pytest.fixture(scope="module")
def small(host):
    import comfy.model_management

    unet = sdxl.build_unet(seed=0)
    yield unet, sdxl.comfy_model(unet)
    comfy.model_management.unload_all_models()


def eps(model, x, t, ctx, pooled):
    """ComfyUI's UNet output (the ε prediction) with the patches applied."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    base = model.model
    adm = base.encode_adm(pooled_output=pooled, width=x.shape[-1] * 8, height=x.shape[-2] * 8)
    with torch.no_grad():
        return base.diffusion_model(x, t, context=ctx, y=adm)


def peft_eps(unet, lora_dir, strength, x, t, ctx, pooled):
    model = peft_lora.peft_scaled(unet, lora_dir, strength)
    h, w = x.shape[-2] * 8, x.shape[-1] * 8
    ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32).expand(x.shape[0], -1)
    with torch.no_grad():
        return model(x, t, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_lora_loader_applies_the_sdxl_peft_lora_as_peft_does(host, loras, small, strength):
    unet, model = small
    lora_dir = sdxl.save_peft_lora(unet, loras / "swd-sdxl", seed=1)
    keys = safetensors.torch.load_file(lora_dir / "adapter_model.safetensors")
    assert any(v.ndim == 4 for v in keys.values())  # conv pairs are in the LoRA
    out = host.node("SwDLoraLoader").execute(model, "swd-sdxl/adapter_model.safetensors", strength)
    patched = out.args[0]
    assert len(patched.patches) == len(keys) // 2 and not model.patches
    g = torch.Generator().manual_seed(5)
    x, ctx, pooled = torch.randn(2, 4, 16, 24, generator=g), torch.randn(2, 7, 32, generator=g), torch.randn(
        2, sdxl.POOLED_FEATURES, generator=g)
    t = torch.tensor([800.0, 400.0])
    ours, plain = eps(patched, x, t, ctx, pooled), eps(model, x, t, ctx, pooled)
    reference = peft_eps(unet, lora_dir, strength, x, t, ctx, pooled)
    assert (reference - plain).abs().max() > 1e-2  # the LoRA does something
    assert (ours - reference).abs().max().item() < 1e-5


def test_other_families_loras_on_sdxl_and_sdxl_s_on_others_are_named(host, loras, small):
    unet, model = small
    sdxl.save_peft_lora(unet, loras / "swd-sdxl", seed=1)
    sd3 = host.node("UNETLoader")().load_unet(paths.SD3_DIFFUSION_MODEL, "default")[0]
    with pytest.raises(host.swd_core.SwDError, match=r"is an SDXL LoRA but the model is SD3\.5"):
        host.node("SwDLoraLoader").execute(sd3, "swd-sdxl/adapter_model.safetensors", 1.0)
    assert not sd3.patches
    flux_standins.save_peft_lora(flux_standins.build_transformer(seed=0), loras / "flux", seed=0)
    with pytest.raises(host.swd_core.SwDError, match=r"is a FLUX LoRA but the model is SDXL"):
        host.node("SwDLoraLoader").execute(model, "flux/adapter_model.safetensors", 1.0)
    # an SD1.5-layout UNet LoRA (attention at the first level, one block each, 768-wide context)
    sd15 = sdxl.build_unet(seed=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), transformer_layers_per_block=1,
                           cross_attention_dim=768, addition_embed_type=None, use_linear_projection=False)
    sdxl.save_peft_lora(sd15, loras / "sd15", seed=2)
    with pytest.raises(host.swd_core.SwDError, match=r"is an SD1\.5 LoRA but the model is SDXL"):
        host.node("SwDLoraLoader").execute(model, "sd15/adapter_model.safetensors", 1.0)
    assert not model.patches


def test_the_sd35_standin_lora_on_sdxl_is_refused(host, small):
    _, model = small
    with pytest.raises(host.swd_core.SwDError, match=r"is an SD3\.5 LoRA but the model is SDXL|match no weight"):
        host.node("SwDLoraLoader").execute(model, paths.SD3_LORA, 1.0)
    assert not model.patches


def test_two_swd_loader_loras_stack_as_peft_with_both_adapters(host, loras, small):
    """SwD LoRA Loader twice on SDXL (the second with alpha != r) = PEFT with both adapters active."""
    unet, model = small
    first = sdxl.save_peft_lora(unet, loras / "swd-sdxl", seed=1)
    second = sdxl.save_peft_lora(unet, loras / "style", seed=7, r=2, lora_alpha=5)
    node = host.node("SwDLoraLoader")
    stacked = node.execute(node.execute(model, "swd-sdxl/adapter_model.safetensors", 1.0).args[0],
                           "style/adapter_model.safetensors", 0.5).args[0]
    peft = peft_lora.peft_stacked(unet, [(first, 1.0), (second, 0.5)])
    g = torch.Generator().manual_seed(6)
    x, ctx, pooled = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 7, 32, generator=g), torch.randn(
        1, sdxl.POOLED_FEATURES, generator=g)
    t = torch.tensor([600.0])
    ids = torch.tensor([[128, 128, 0, 0, 128, 128]], dtype=torch.float32)
    with torch.no_grad():
        reference = peft(x, t, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled,
                                                                            "time_ids": ids}).sample
    assert (eps(stacked, x, t, ctx, pooled) - reference).abs().max().item() < 1e-5
