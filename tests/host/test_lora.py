"""SwDLoraLoader in the real ComfyUI host against diffusers + PEFT on the same weights."""
import pytest
import torch
from diffusers import SD3Transformer2DModel
from peft import PeftModel

from harness.comfy_host import Host
from harness.paths import MODELS, SD3_LORA_DIR
from harness.reference import sd3 as sd3_reference
from harness.standins import sd3 as standins

LORA = "swd-standin-lora/adapter_model.safetensors"
SIGMA = 0.7


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(1, 16, 16, 24, generator=g), torch.randn(1, 20, 4096, generator=g),
            torch.randn(1, 2048, generator=g))


@pytest.fixture(scope="module")
def base(host):
    return host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]


def comfy_x0(patcher, inputs):
    x, ctx, pooled = inputs
    return Host.x0(patcher, x, SIGMA, c_crossattn=ctx, y=pooled)


def peft_x0(lora_dir, inputs):
    transformer = SD3Transformer2DModel.from_pretrained(MODELS / standins.TRANSFORMER_DIR)
    return sd3_reference.x0(PeftModel.from_pretrained(transformer, str(lora_dir)).eval(), inputs[0], SIGMA, *inputs[1:])


def swd_lora(host, base, name, strength=1.0):
    return host.node("SwDLoraLoader").execute(base, name, strength)


def test_matches_peft_and_stock_loader_does_not(host, base, inputs):
    ours_out = swd_lora(host, base, LORA)
    assert "patched 14 weights" in ours_out.ui.as_dict()["text"][0]
    reference = peft_x0(MODELS / "loras" / SD3_LORA_DIR, inputs)
    plain = comfy_x0(base, inputs)
    ours = comfy_x0(ours_out.args[0], inputs)
    lora_effect = (reference - plain).abs().max().item()
    assert lora_effect > 1e-2  # the LoRA changes the prediction visibly
    assert (ours - reference).abs().max().item() < 1e-5

    # The stock loader ignores adapter_config.json (lora_alpha 8, r 4): it applies half the update.
    stock = host.node("LoraLoaderModelOnly")().load_lora_model_only(base, LORA, 1.0)[0]
    stock_err = (comfy_x0(stock, inputs) - reference).abs().max().item()
    assert stock_err > 0.2 * lora_effect
    stock2 = host.node("LoraLoaderModelOnly")().load_lora_model_only(base, LORA, 2.0)[0]
    assert (comfy_x0(stock2, inputs) - reference).abs().max().item() < 1e-5


@pytest.mark.parametrize("variant", [
    dict(r=4, lora_alpha=8, use_rslora=True),
    dict(r=4, lora_alpha=6, rank_pattern={"transformer_blocks.1.attn.to_q": 8, "net.2": 2},
         alpha_pattern={"transformer_blocks.0.ff.net.0.proj": 3, "to_out.0": 1}),
])
def test_peft_config_variants(host, base, inputs, loras, variant):
    """use_rslora, rank_pattern and alpha_pattern give PEFT's own per-module scale."""
    transformer = SD3Transformer2DModel.from_pretrained(MODELS / standins.TRANSFORMER_DIR)
    lora_dir = standins.save_peft_lora(transformer, loras / "variant", seed=5, **variant)
    ours = comfy_x0(swd_lora(host, base, "variant/adapter_model.safetensors").args[0], inputs)
    assert (ours - peft_x0(lora_dir, inputs)).abs().max().item() < 1e-5


def test_strength_scales_and_stacks_and_unpatches(host, base, inputs):
    import comfy.model_management

    comfy.model_management.unload_all_models()  # clones share one module: restore it first
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    plain = comfy_x0(base, inputs)
    full = comfy_x0(swd_lora(host, base, LORA, 1.0).args[0], inputs)
    half = comfy_x0(swd_lora(host, base, LORA, 0.5).args[0], inputs)
    # stacking: two loaders at 0.5 each = one at 1.0 (same patch mechanism as the stock nodes)
    stacked_model = swd_lora(host, swd_lora(host, base, LORA, 0.5).args[0], LORA, 0.5).args[0]
    stacked = comfy_x0(stacked_model, inputs)
    assert (stacked - full).abs().max().item() < 1e-5
    assert (half - plain).abs().max().item() < (full - plain).abs().max().item()
    assert torch.equal(comfy_x0(swd_lora(host, base, LORA, 0.0).args[0], inputs), plain)
    comfy.model_management.unload_all_models()
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "base weights changed after unloading"


def test_single_file_without_config_gets_scale_one(host, base, inputs, loras):
    import safetensors.torch

    sd = safetensors.torch.load_file(MODELS / "loras" / SD3_LORA_DIR / "adapter_model.safetensors")
    safetensors.torch.save_file({k.replace("base_model.model.", "transformer."): v for k, v in sd.items()},
                                loras / "single.safetensors")
    out = swd_lora(host, base, "single.safetensors")
    assert "scale 1" in out.ui.as_dict()["text"][0]
    stock = host.node("LoraLoaderModelOnly")().load_lora_model_only(base, LORA, 1.0)[0]
    assert (comfy_x0(out.args[0], inputs) - comfy_x0(stock, inputs)).abs().max().item() < 1e-6
