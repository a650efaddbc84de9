"""Stacked LoRAs: SwD LoRA Loader with the stock LoRA loaders and with a second SwD LoRA.

The reference is PEFT with both adapters active (``set_adapter([a, b])``): PEFT adds each
active adapter's ``scale * B @ A x`` to the base layer's output, and ComfyUI adds each LoRA's
``strength * scale * B @ A`` to the weight, so the order of the loaders does not matter and
the two agree up to float rounding.
"""
import pytest
import safetensors.torch
import torch
from diffusers import SD3Transformer2DModel

from harness import peft_lora
from harness.comfy_host import Host
from harness.paths import MODELS, SD3_LORA_DIR
from harness.reference import sd3 as sd3_reference
from harness.standins import sd3 as standins

SWD = "swd-standin-lora/adapter_model.safetensors"
SIGMA = 0.7


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(1, 16, 16, 16, generator=g), torch.randn(1, 12, 4096, generator=g),
            torch.randn(1, 2048, generator=g))


@pytest.fixture(scope="module")
def base(host):
    return host.node("UNETLoader")().load_unet("swd-standin-sd35-transformer.safetensors", "default")[0]


@pytest.fixture(scope="module")
def loras(host, tmp_path_factory):
    """A second PEFT LoRA (``swd2``, alpha != r), a stock-style single file (``style.safetensors``,
    no alpha keys: stock LoraLoader applies B @ A at scale 1, so its PEFT twin has lora_alpha = r)
    and a LoRA for a wider transformer (same key names, other shapes: ``other/``)."""
    root = tmp_path_factory.mktemp("stack_loras")
    transformer = SD3Transformer2DModel.from_pretrained(MODELS / standins.TRANSFORMER_DIR)
    standins.save_peft_lora(transformer, root / "swd2", seed=11, r=2, lora_alpha=5)
    style_dir = standins.save_peft_lora(transformer, root / "style-peft", seed=12, r=4, lora_alpha=4)
    sd = safetensors.torch.load_file(style_dir / "adapter_model.safetensors")
    assert not any(k.endswith(".alpha") for k in sd)
    safetensors.torch.save_file({k.replace("base_model.model.", "transformer."): v for k, v in sd.items()},
                                root / "style.safetensors")
    wide = standins.build_transformer(0, num_attention_heads=3)
    standins.save_peft_lora(wide, root / "other", seed=13)
    with host.model_folder("loras", root):
        yield root


def comfy_x0(patcher, inputs):
    x, ctx, pooled = inputs
    return Host.x0(patcher, x, SIGMA, c_crossattn=ctx, y=pooled)


def peft_x0(adapter_dirs, inputs):
    """x0 of diffusers + PEFT with every adapter in ``adapter_dirs`` active at once."""
    x, ctx, pooled = inputs
    transformer = SD3Transformer2DModel.from_pretrained(MODELS / standins.TRANSFORMER_DIR)
    model = peft_lora.peft_stacked(transformer, [(d, 1.0) for d in adapter_dirs])
    assert sorted(model.base_model.active_adapters) == sorted(f"a{i}" for i in range(len(adapter_dirs)))
    return sd3_reference.x0(model, x, SIGMA, ctx, pooled)


def swd(host, model, name, strength=1.0):
    out = host.node("SwDLoraLoader").execute(model, name, strength)
    return out.args[0], out.ui.as_dict()["text"][0]


def stock(host, model, name, strength=1.0):
    return host.node("LoraLoaderModelOnly")().load_lora_model_only(model, name, strength)[0]


def test_two_swd_loras_equal_peft_with_both_adapters(host, base, inputs, loras):
    first, _ = swd(host, base, SWD)
    both, report = swd(host, first, "swd2/adapter_model.safetensors")
    reference = peft_x0([MODELS / "loras" / SD3_LORA_DIR, loras / "swd2"], inputs)
    one = peft_x0([MODELS / "loras" / SD3_LORA_DIR], inputs)
    assert (reference - one).abs().max().item() > 1e-2  # the second LoRA matters
    assert (comfy_x0(both, inputs) - reference).abs().max().item() < 1e-5
    # the report names the whole SwD stack, in loader order
    stack_line = report.splitlines()[-1]
    assert stack_line == f"SwD LoRA stack: {SWD} @ 1 + swd2/adapter_model.safetensors @ 1"


@pytest.mark.parametrize("order", ["stock_first", "swd_first"])
def test_stock_loader_before_or_after_equals_peft(host, base, inputs, loras, order):
    if order == "stock_first":
        model, report = swd(host, stock(host, base, "style.safetensors"), SWD)
        assert "other loaders" in report  # the stock LoRA's patches are reported, not named
    else:
        model = stock(host, swd(host, base, SWD)[0], "style.safetensors")
    reference = peft_x0([MODELS / "loras" / SD3_LORA_DIR, loras / "style-peft"], inputs)
    assert (comfy_x0(model, inputs) - reference).abs().max().item() < 1e-5


def test_stock_lora_loader_with_clip_then_swd(host, base, inputs, loras):
    """LoraLoader (model + CLIP) before SwD LoRA Loader: the same as the model-only one."""
    clip = host.node("CLIPLoader")().load_clip("swd-standin-clip_l.safetensors", "sd3")[0]
    model, _ = host.node("LoraLoader")().load_lora(base, clip, "style.safetensors", 1.0, 1.0)
    model, _ = swd(host, model, SWD)
    reference = peft_x0([MODELS / "loras" / SD3_LORA_DIR, loras / "style-peft"], inputs)
    assert (comfy_x0(model, inputs) - reference).abs().max().item() < 1e-5


def test_second_lora_for_another_model_is_refused_and_first_stays_usable(host, base, inputs, loras):
    first, _ = swd(host, base, SWD)
    expected = comfy_x0(first, inputs)
    patches_before = {k: len(v) for k, v in first.patches.items()}
    with pytest.raises(host.swd_core.SwDError, match="another model"):
        swd(host, first, "other/adapter_model.safetensors")
    assert {k: len(v) for k, v in first.patches.items()} == patches_before  # nothing half-applied
    assert torch.equal(comfy_x0(first, inputs), expected)
    reference = peft_x0([MODELS / "loras" / SD3_LORA_DIR], inputs)
    assert (expected - reference).abs().max().item() < 1e-5
