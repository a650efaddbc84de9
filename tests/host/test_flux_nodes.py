"""The nodes on FLUX: the FLUX presets, the guidance shown and checked on the sampler, the SwD LoRA
Loader with the FLUX PEFT LoRA (and refusing a FLUX LoRA on SD3.5 and the reverse)."""
import pytest
import torch
from peft import PeftModel

from harness import paths
from harness.reference import flux as reference
from harness.standins import flux
from harness.standins import sd3 as sd3_standins

SIGMA = 0.7


@pytest.fixture(scope="module")
def small(host, tmp_path_factory):
    """(diffusers transformer, ComfyUI model, LoRA name) with the LoRA in an extra loras folder."""
    import comfy.model_management

    folder = tmp_path_factory.mktemp("flux_loras")
    transformer = flux.build_transformer(seed=0)
    flux.save_peft_lora(transformer, folder / "swd_flux", seed=0)
    with host.model_folder("loras", folder):
        yield transformer, flux.comfy_model(transformer), "swd_flux/adapter_model.safetensors", folder
    comfy.model_management.unload_all_models()


def text(host, guidance=4.5):
    g = torch.Generator().manual_seed(2)
    cond = [[torch.randn(1, 9, 64, generator=g), {"pooled_output": torch.randn(1, 32, generator=g)}]]
    return cond if guidance is None else host.node("FluxGuidance").execute(cond, guidance).args[0]


def run(host, model, cond, preset="FLUX.1-dev, 4 steps"):
    schedule = host.node("SwDSchedule").execute(preset, "", "").args[0]
    out = host.node("SwDSampler").execute(model, cond, cond, {"samples": torch.zeros(1, 16, 32, 32)}, schedule,
                                          1, 1.0, "bicubic")
    return out.args[0]["samples"], "\n".join(out.ui.as_dict()["text"]) if out.ui else ""


def test_flux_presets_are_published_both_ways(core):
    table, code = core.PRESETS["FLUX.1-dev, 4 steps"], core.PRESETS["FLUX.1-dev, 4 steps (README code sigmas)"]
    assert table.scales == code.scales == (64, 80, 96, 128)
    assert table.sigmas == (1.0, 0.8959, 0.7371, 0.6022, 0.0) and code.sigmas == (1.0, 0.8956, 0.7363, 0.6007, 0.0)
    assert table.family == code.family == "FLUX"


def test_sampler_shows_the_guidance_it_ran_with(host, small):
    _, model, _, _ = small
    _, shown = run(host, model, text(host, 4.5))
    assert "Ran with FLUX guidance 4.5" in shown and "Warning" not in shown


@pytest.mark.parametrize("guidance,says", [
    (None, "no guidance, so ComfyUI runs FLUX at its default 3.5"),
    (3.5, "guidance 3.5 differs from the 4.5"),
    (0.0, "guidance 0 differs from the 4.5"),
])
def test_sampler_warns_on_missing_or_other_guidance(host, small, guidance, says):
    _, model, _, _ = small
    latent, shown = run(host, model, text(host, guidance))
    assert says in shown and "FluxGuidance" in shown
    assert torch.isfinite(latent).all()  # a warning, not a refusal: the run is the user's choice


def test_an_sd35_preset_on_flux_is_named(host, small):
    _, model, _, _ = small
    _, shown = run(host, model, text(host), preset="SD3.5 Large, 4 steps")
    assert "published for SD3.5 but the model is FLUX" in shown


def test_lora_loader_loads_the_flux_peft_lora_as_peft_applies_it(host, small):
    transformer, model, name, folder = small
    out = host.node("SwDLoraLoader").execute(model, name, 0.6)
    assert "patched" in out.ui.as_dict()["text"][0]
    patched = out.args[0]
    import comfy.model_management

    comfy.model_management.load_models_gpu([patched])
    g = torch.Generator().manual_seed(5)
    x, ctx = torch.randn(1, 16, 8, 8, generator=g), torch.randn(1, 9, 64, generator=g)
    pooled = torch.randn(1, 32, generator=g)
    with torch.no_grad():
        ours = patched.model.apply_model(x, torch.tensor([SIGMA]), c_crossattn=ctx, y=pooled,
                                         guidance=torch.tensor([4.5])).float()
    from peft.tuners.lora import LoraLayer

    peft = PeftModel.from_pretrained(flux.build_transformer(seed=0), str(folder / "swd_flux")).eval()
    for module in peft.modules():
        if isinstance(module, LoraLayer):
            module.scale_layer(0.6)
    expected = x - SIGMA * reference.velocity(peft, x, SIGMA, ctx, pooled, torch.zeros(ctx.shape[1], 3), 4.5)
    assert (ours - expected).abs().max().item() < 1e-5


def test_a_flux_lora_on_sd35_and_an_sd35_lora_on_flux_name_both(host, small):
    _, model, name, folder = small
    sd3 = host.node("UNETLoader")().load_unet(paths.SD3_DIFFUSION_MODEL, "default")[0]
    with pytest.raises(host.swd_core.SwDError, match=r"is a FLUX LoRA but the model is SD3\.5"):
        host.node("SwDLoraLoader").execute(sd3, name, 1.0)
    assert not sd3.patches
    # an SD3.5 LoRA (the stand-in's, 2 joint blocks: its names alone do not tell) on FLUX: the shapes do
    with pytest.raises(host.swd_core.SwDError, match=r"another model than this FLUX"):
        host.node("SwDLoraLoader").execute(model, paths.SD3_LORA, 1.0)
    # an SD3.5 Medium LoRA (dual attention) on FLUX: named by its attn2
    medium = sd3_standins.build_transformer(seed=3, dual_attention_layers=(0,))
    sd3_standins.save_peft_lora(medium, folder / "medium", seed=4)
    with pytest.raises(host.swd_core.SwDError, match=r"is an SD3\.5 LoRA but the model is FLUX"):
        host.node("SwDLoraLoader").execute(model, "medium/adapter_model.safetensors", 1.0)
    assert not model.patches
