"""SwDSampler on ComfyUI's FLUX model gives the latent of the independent diffusers reference.

Same weights (the small FLUX stand-in), same seed, upstream's FLUX schedule, guidance 4.5 set
on the conditioning by ComfyUI's FluxGuidance node; ComfyUI's LATENT is compared in the
transformer's space (``process_latent_in``: FLUX's scale 0.3611, shift 0.1159).
"""
import pytest
import torch

from harness import peft_lora
from harness.reference import flux as reference
from harness.standins import flux

SCALES = (64, 80, 96, 128)
SIGMAS = (1.0, 0.8956, 0.7363, 0.6007, 0.0)  # yresearch/swd_flux, README code
GUIDANCE = 4.5
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def small(host, tmp_path_factory):
    import comfy.model_management

    transformer = flux.build_transformer(seed=0)
    patcher = flux.comfy_model(transformer)
    lora_dir = flux.save_peft_lora(transformer, tmp_path_factory.mktemp("flux_lora") / "swd_flux", seed=0)
    yield transformer, patcher, lora_dir
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def text():
    g = torch.Generator().manual_seed(2)
    return torch.randn(1, 9, 64, generator=g), torch.randn(1, 32, generator=g)


def conditioning(host, text, guidance=GUIDANCE):
    ctx, pooled = text
    cond = [[ctx, {"pooled_output": pooled}]]
    return host.node("FluxGuidance").execute(cond, guidance).args[0]


def swd_sampler(host, model, cond, latent, seed):
    schedule = host.swd_core.Schedule(SCALES, SIGMAS)
    out = host.node("SwDSampler").execute(model, cond, cond, {"samples": latent}, schedule, seed, 1.0, "bicubic")
    return out.args[0]["samples"]


@pytest.mark.parametrize(("batch", "height", "width", "sizes", "strength"), [
    (1, 32, 32, [(16, 16), (20, 20), (24, 24), (32, 32)], None),
    (1, 32, 48, [(16, 24), (20, 30), (24, 36), (32, 48)], None),
    (2, 32, 32, [(16, 16), (20, 20), (24, 24), (32, 32)], None),
    (1, 48, 32, [(24, 16), (30, 20), (36, 24), (48, 32)], 0.7),
], ids=["square", "non-square", "batch2", "lora-0.7"])
def test_swd_sampler_matches_diffusers_reference(host, small, text, batch, height, width, sizes, strength):
    transformer, patcher, lora_dir = small
    model, ref_model = patcher, transformer
    if strength is not None:
        model = peft_lora.comfy_patched(host, patcher, lora_dir, strength)
        ref_model = peft_lora.peft_scaled(transformer, lora_dir, strength)
    seed = 1234 + batch
    latent = swd_sampler(host, model, conditioning(host, text), torch.zeros(batch, 16, height, width), seed)
    assert latent.shape == (batch, 16, height, width)
    ours = patcher.model.process_latent_in(latent.float())
    ref = reference.swd_latents(ref_model, SIGMAS, sizes, *text, batch=batch, seed=seed, guidance=GUIDANCE)
    assert (ours - ref).abs().max().item() <= TOLERANCE
    assert ref.abs().max().item() > 0.1
    if strength is not None:  # the LoRA changed the picture (the comparison is not LoRA-blind)
        plain = reference.swd_latents(transformer, SIGMAS, sizes, *text, batch=batch, seed=seed, guidance=GUIDANCE)
        assert (plain - ref).abs().max().item() > 100 * TOLERANCE


def test_guidance_reaches_the_model(host, small, text):
    """The conditioning's ``guidance`` (FluxGuidance) is what the model embeds: 1.5 != 4.5."""
    transformer, patcher, _ = small
    sizes = [(16, 16), (20, 20), (24, 24), (32, 32)]
    latent = swd_sampler(host, patcher, conditioning(host, text, 1.5), torch.zeros(1, 16, 32, 32), 7)
    ours = patcher.model.process_latent_in(latent.float())
    at_15 = reference.swd_latents(transformer, SIGMAS, sizes, *text, batch=1, seed=7, guidance=1.5)
    at_45 = reference.swd_latents(transformer, SIGMAS, sizes, *text, batch=1, seed=7, guidance=4.5)
    assert (ours - at_15).abs().max().item() <= TOLERANCE
    assert (ours - at_45).abs().max().item() > 100 * TOLERANCE


def test_missing_guidance_runs_at_comfyui_default_3_5(host, small, text):
    """Without FluxGuidance, ComfyUI's ``model_base.Flux.extra_conds`` silently uses 3.5, not SwD's 4.5."""
    transformer, patcher, _ = small
    sizes = [(16, 16), (20, 20), (24, 24), (32, 32)]
    ctx, pooled = text
    latent = swd_sampler(host, patcher, [[ctx, {"pooled_output": pooled}]], torch.zeros(1, 16, 32, 32), 8)
    ours = patcher.model.process_latent_in(latent.float())
    at_35 = reference.swd_latents(transformer, SIGMAS, sizes, *text, batch=1, seed=8, guidance=3.5)
    assert (ours - at_35).abs().max().item() <= TOLERANCE
