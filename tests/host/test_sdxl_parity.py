"""SwDSampler on ComfyUI's SDXL model gives the latent of the independent diffusers reference.

Same weights (the small SDXL stand-in in diffusers' ``UNet2DConditionModel`` and ComfyUI's
``model_base.SDXL``), same seed, upstream's SDXL schedule (DDPM times 1.0, 0.8, 0.6, 0.4 as
``t / 1000``), compared in the UNet's latent space (``process_latent_in``: SDXL's 0.13025).
"""
import importlib

import pytest
import torch

from harness import peft_lora
from harness.reference import sdxl as reference
from harness.standins import sdxl

PRESET = "SDXL, 4 steps"
TIMES = (1.0, 0.8, 0.6, 0.4, 0.0)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def small(host, tmp_path_factory):
    import comfy.model_management

    unet = sdxl.build_unet(seed=0)
    patcher = sdxl.comfy_model(unet)
    lora_dir = sdxl.save_peft_lora(unet, tmp_path_factory.mktemp("sdxl_lora") / "swd-sdxl", seed=0)
    yield unet, patcher, lora_dir
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def text():
    g = torch.Generator().manual_seed(3)
    return torch.randn(1, 7, 32, generator=g), torch.randn(1, sdxl.POOLED_FEATURES, generator=g)


@pytest.fixture(scope="module")
def negative():
    g = torch.Generator().manual_seed(4)
    return torch.randn(1, 7, 32, generator=g), torch.randn(1, sdxl.POOLED_FEATURES, generator=g)


def cond(text):
    ctx, pooled = text
    return [[ctx, {"pooled_output": pooled}]]


def swd_sampler(host, model, positive, negative, latent, seed, cfg=1.0):
    schedule = host.swd_core.PRESETS[PRESET]
    out = host.node("SwDSampler").execute(model, positive, negative, {"samples": latent}, schedule, seed, cfg,
                                          "bicubic")
    return out.args[0]["samples"]


def test_preset_is_upstreams_call(host):
    schedule = host.swd_core.PRESETS[PRESET]
    assert schedule.sigmas == TIMES and schedule.scales == (64, 80, 96, 128) and schedule.family == "SDXL"


@pytest.mark.parametrize(("batch", "height", "width", "sizes", "strength", "cfg"), [
    (1, 32, 32, [(16, 16), (20, 20), (24, 24), (32, 32)], None, 1.0),
    (1, 32, 48, [(16, 24), (20, 30), (24, 36), (32, 48)], None, 1.0),
    (2, 32, 32, [(16, 16), (20, 20), (24, 24), (32, 32)], None, 1.0),
    (1, 48, 32, [(24, 16), (30, 20), (36, 24), (48, 32)], 0.7, 1.0),
    (1, 32, 32, [(16, 16), (20, 20), (24, 24), (32, 32)], None, 3.0),
], ids=["square", "non-square", "batch2", "lora-0.7", "cfg3-negative"])
def test_swd_sampler_matches_diffusers_reference(host, small, text, negative, batch, height, width, sizes,
                                                 strength, cfg):
    unet, patcher, lora_dir = small
    model, ref_model = patcher, unet
    if strength is not None:
        model = peft_lora.comfy_patched(host, patcher, lora_dir, strength)
        ref_model = peft_lora.peft_scaled(unet, lora_dir, strength)
    seed = 4321 + batch
    latent = swd_sampler(host, model, cond(text), cond(negative), torch.zeros(batch, 4, height, width), seed, cfg)
    assert latent.shape == (batch, 4, height, width)
    ours = patcher.model.process_latent_in(latent.float())
    ref = reference.swd_latents(ref_model, TIMES, sizes, *text, batch=batch, seed=seed, cfg=cfg,
                                neg_embeds=negative[0], neg_pooled=negative[1])
    assert (ours - ref).abs().max().item() <= TOLERANCE
    assert ref.abs().max().item() > 0.1
    if strength is not None:  # the LoRA changed the picture (the comparison is not LoRA-blind)
        plain = reference.swd_latents(unet, TIMES, sizes, *text, batch=batch, seed=seed)
        assert (plain - ref).abs().max().item() > 100 * TOLERANCE
    if cfg > 1:  # the negative prompt reached the model
        no_cfg = reference.swd_latents(ref_model, TIMES, sizes, *text, batch=batch, seed=seed)
        assert (no_cfg - ref).abs().max().item() > 100 * TOLERANCE


def test_sampler_swd_with_schedule_sigmas_matches(host, small, text):
    """SamplerSwD + SamplerCustom with the SwD Schedule's SIGMAS output (SDXL's ComfyUI sigmas) = SwDSampler."""
    _, patcher, _ = small
    schedule, sigmas = host.node("SwDSchedule").execute(PRESET, "", "").args
    assert sigmas[0].item() == pytest.approx(14.6146, rel=1e-4) and sigmas[-1].item() == 0
    sampler = host.node("SamplerSwD").execute(schedule, "bicubic").args[0]
    latent = {"samples": torch.zeros(1, 4, 32, 32)}
    out = host.node("SamplerCustom").execute(patcher, True, 99, 1.0, cond(text), cond(text), sampler, sigmas,
                                             latent).args[0]["samples"]
    assert torch.equal(out, swd_sampler(host, patcher, cond(text), cond(text), latent["samples"], 99))


def test_img2img_runs_the_tail_and_split_sigmas_gives_the_same(host, small, text):
    """denoise 0.7 on SDXL starts at t 600 from the image; SplitSigmas of the SIGMAS output (SDXL sigmas)
    through SamplerSwD gives the same latent, and so does a custom schedule's raw values (read as times)."""
    _, patcher, _ = small
    g = torch.Generator().manual_seed(11)
    image = {"samples": torch.randn(1, 4, 32, 32, generator=g)}
    schedule, sigmas = host.node("SwDSchedule").execute(PRESET, "", "").args
    out = host.node("SwDSampler").execute(patcher, cond(text), cond(text), image, schedule, 5, 1.0, "bicubic", 0.7)
    ours = out.args[0]["samples"]
    full = swd_sampler(host, patcher, cond(text), cond(text), image["samples"], 5)
    assert torch.isfinite(ours).all() and not torch.allclose(ours, full)
    low = host.node("SplitSigmas").execute(sigmas, 2).args[1]
    assert low[0].item() == pytest.approx(2.2846, rel=1e-4)
    sampler = host.node("SamplerSwD").execute(schedule, "bicubic").args[0]
    split = host.node("SamplerCustom").execute(patcher, True, 5, 1.0, cond(text), cond(text), sampler, low,
                                               image).args[0]["samples"]
    assert torch.equal(split, ours)
    custom, raw = host.node("SwDSchedule").execute("custom", "64, 80, 96, 128", "1.0, 0.8, 0.6, 0.4, 0").args
    assert raw.tolist() == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.0])  # no family: output as written
    sampler = host.node("SamplerSwD").execute(custom, "bicubic").args[0]
    latent = {"samples": torch.zeros(1, 4, 32, 32)}
    via_raw = host.node("SamplerCustom").execute(patcher, True, 99, 1.0, cond(text), cond(text), sampler, raw,
                                                 latent).args[0]["samples"]
    assert torch.equal(via_raw, swd_sampler(host, patcher, cond(text), cond(text), latent["samples"], 99))


def test_sizes_round_to_the_unet_s_downsampling(host):
    """The workflow stand-in (3 levels, like SDXL) rounds every scale to 4 latent pixels (32 px)."""
    import comfy.sd

    sampler = importlib.import_module(host.pack.__name__ + ".nodes.sampler")
    path = host.folder_paths.get_full_path("checkpoints", "swd-standin-sdxl.safetensors")
    model = comfy.sd.load_checkpoint_guess_config(path, output_vae=False, output_clip=False)[0]
    assert type(model.model).__name__ == "SDXL"
    assert sampler.latent_multiple(model.model.diffusion_model) == 4
    sizes = host.swd_core.latent_sizes(host.swd_core.PRESETS[PRESET].scales, 104, 152, 4)  # 832x1216 px
    assert sizes == [(52, 76), (64, 96), (80, 116), (104, 152)]
