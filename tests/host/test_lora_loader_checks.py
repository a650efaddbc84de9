"""SwDLoraLoader's checks in the real ComfyUI host: SD3.5 Medium (MMDiT-X) LoRAs against PEFT, a
Medium LoRA on a model without dual attention, patches ComfyUI does not apply, keys that match
nothing whatever the log level."""
import logging

import pytest
import safetensors.torch
import torch
from peft import PeftModel

from harness.comfy_host import Host
from harness.reference import sd3 as reference
from harness.standins import sd3 as standins

SIGMA = 0.7


@pytest.fixture(scope="module")
def medium_transformer():
    """An MMDiT-X stand-in (SD3.5 Medium's dual attention in block 0), diffusers format."""
    return standins.build_transformer(seed=3, dual_attention_layers=(0,))


def comfy_model(transformer):
    import comfy.sd

    return comfy.sd.load_diffusion_model_state_dict(dict(transformer.state_dict()))


def inputs():
    g = torch.Generator().manual_seed(2)
    return (torch.randn(1, 16, 16, 16, generator=g), torch.randn(1, 12, 4096, generator=g),
            torch.randn(1, 2048, generator=g))


def comfy_x0(patcher, x, ctx, pooled):
    return Host.x0(patcher, x, SIGMA, c_crossattn=ctx, y=pooled)


def peft_x0(transformer, lora_dir, x, ctx, pooled):
    model = PeftModel.from_pretrained(standins.build_transformer(seed=3, dual_attention_layers=(0,)), str(lora_dir))
    return reference.x0(model.eval(), x, SIGMA, ctx, pooled)


def test_medium_lora_with_attn2_matches_peft(host, loras, medium_transformer):
    lora_dir = standins.save_peft_lora(medium_transformer, loras / "medium", seed=4)
    keys = safetensors.torch.load_file(lora_dir / "adapter_model.safetensors")
    assert any(".attn2.to_q." in k for k in keys)  # the dual attention is in the LoRA
    base = comfy_model(medium_transformer)
    assert "diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight" in base.model_state_dict()
    out = host.node("SwDLoraLoader").execute(base, "medium/adapter_model.safetensors", 1.0)
    x, ctx, pooled = inputs()
    ours = comfy_x0(out.args[0], x, ctx, pooled)
    expected = peft_x0(medium_transformer, lora_dir, x, ctx, pooled)
    assert (expected - comfy_x0(base, x, ctx, pooled)).abs().max() > 1e-2  # the LoRA does something
    assert (ours - expected).abs().max().item() < 1e-5


def test_medium_lora_on_a_model_without_dual_attention_is_named(host, loras, medium_transformer):
    standins.save_peft_lora(medium_transformer, loras / "medium", seed=4)
    large_like = host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]
    before = dict(large_like.patches)
    with pytest.raises(host.swd_core.SwDError, match="dual attention") as err:
        host.node("SwDLoraLoader").execute(large_like, "medium/adapter_model.safetensors", 1.0)
    assert "attn2" in str(err.value) and not isinstance(err.value, KeyError)
    assert large_like.patches == before  # nothing half-applied


def test_patches_comfyui_does_not_apply_are_refused(host, monkeypatch):
    import comfy.model_patcher

    base = host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]
    real = comfy.model_patcher.ModelPatcher.add_patches

    def drops_one(self, patches, *args, **kwargs):
        applied = real(self, patches, *args, **kwargs)
        return applied[1:]  # as if one target were not in the model's state dict

    monkeypatch.setattr(comfy.model_patcher.ModelPatcher, "add_patches", drops_one)
    with pytest.raises(host.swd_core.SwDError, match="refusing a partly applied LoRA"):
        host.node("SwDLoraLoader").execute(base, "swd-standin-lora/adapter_model.safetensors", 1.0)
    assert not base.patches  # the input model is untouched


@pytest.mark.parametrize("level", [logging.WARNING, logging.ERROR])
def test_unmatched_keys_are_found_whatever_the_log_level(host, loras, level):
    sd = safetensors.torch.load_file(host.models / "loras" / "swd-standin-lora" / "adapter_model.safetensors")
    sd["base_model.model.no_such_block.to_q.lora_A.weight"] = torch.zeros(4, 8)
    sd["base_model.model.no_such_block.to_q.lora_B.weight"] = torch.zeros(8, 4)
    safetensors.torch.save_file(sd, loras / "extra.safetensors")
    base = host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]
    root = logging.getLogger()
    old = root.level
    root.setLevel(level)  # `--verbose ERROR` hides ComfyUI's "lora key not loaded" warnings
    try:
        with pytest.raises(host.swd_core.SwDError, match=r"2 key\(s\) .* match no weight.*no_such_block"):
            host.node("SwDLoraLoader").execute(base, "extra.safetensors", 1.0)
        assert root.level == level  # the loader leaves the process-wide log level alone
    finally:
        root.setLevel(old)
