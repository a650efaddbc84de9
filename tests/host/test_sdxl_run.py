"""swd_core.run on a diffusers StableDiffusionXLPipeline (upstream's SDXL call) = the diffusers reference = SwDSampler.

The tiny StableDiffusionXLPipeline of ``harness.standins.sdxl.build_pipeline`` (real
diffusers/transformers classes at a small size, SDXL base's DDPMScheduler) stands in for SDXL
base; ComfyUI's SDXL model gets the same UNet weights.
"""
import pytest
import torch

import swd_core
from harness.reference import sdxl as reference
from harness.standins import sdxl

SIGMAS = [1.0, 0.8, 0.6, 0.4, 0.0]  # yresearch/swd-sdxl: DDPM times t/1000
SCALES = [64, 80, 96, 128]
PROMPT = "a cat reading a newspaper"
SIZES = [(16, 16), (20, 20), (24, 24), (32, 32)]  # the scales' ratios at a 256 px final size


@pytest.fixture(scope="module")
def pipe(host):
    return sdxl.build_pipeline(seed=0)


def upstream_call(pipe, seed=0, **kw):
    """Upstream's SDXL call (final height/width, timesteps with the trailing 0) on swd_core.run."""
    sigmas = torch.tensor(SIGMAS)
    kw = {"guidance_scale": 1.0, "height": 256, "width": 256, **kw}
    return swd_core.run(pipe, PROMPT, sigmas=sigmas, timesteps=sigmas * 1000, scales=SCALES,
                        generator=torch.Generator().manual_seed(seed), **kw)


def test_upstream_call_equals_the_reference_and_decodes(pipe):
    out = upstream_call(pipe, output_type="pt")
    embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)
    ref = reference.swd_latents(pipe.unet, SIGMAS, SIZES, embeds, pooled, batch=1, seed=0)
    assert out.sizes == SIZES and out.latents.shape == (1, 4, 32, 32)
    assert (out.latents - ref).abs().max().item() <= 1e-4
    assert ref.abs().max().item() > 0.1
    assert out.images.shape == (1, 3, 256, 256) and torch.isfinite(out.images).all()
    # the trailing 0 may be left out of timesteps; wrong timesteps are refused
    sigmas = torch.tensor(SIGMAS)
    again = swd_core.run(pipe, PROMPT, sigmas=sigmas, timesteps=sigmas[:-1] * 1000, scales=SCALES, height=256,
                         width=256, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert torch.equal(again.latents, out.latents)
    with pytest.raises(swd_core.SwDError, match="timesteps .* do not match the sigmas"):
        swd_core.run(pipe, PROMPT, sigmas=sigmas, timesteps=sigmas * 999, scales=SCALES, height=256, width=256)


def test_cfg_with_a_negative_prompt_equals_the_reference(pipe):
    out = upstream_call(pipe, output_type="latent", guidance_scale=3.0, negative_prompt="blurry", seed=5)
    embeds, neg, pooled, neg_pooled = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=True,
                                                         negative_prompt="blurry")
    ref = reference.swd_latents(pipe.unet, SIGMAS, SIZES, embeds, pooled, batch=1, seed=5, cfg=3.0,
                                neg_embeds=neg, neg_pooled=neg_pooled)
    assert (out.latents - ref).abs().max().item() <= 1e-4


def test_run_equals_swd_sampler_on_comfyui_s_sdxl(host, pipe):
    import comfy.model_management

    out = swd_core.run(pipe, PROMPT, preset="SDXL, 4 steps", target_height=256, target_width=320,
                       generator=torch.Generator().manual_seed(3), output_type="latent")
    embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)
    model = sdxl.comfy_model(pipe.unet)
    cond = [[embeds, {"pooled_output": pooled}]]
    schedule = host.node("SwDSchedule").execute("SDXL, 4 steps", "", "").args[0]
    latent = {"samples": torch.zeros(1, 4, 32, 40)}
    ours = host.node("SwDSampler").execute(model, cond, cond, latent, schedule, 3, 1.0, "bicubic").args[0]["samples"]
    assert (model.model.process_latent_in(ours) - out.latents).abs().max().item() <= 1e-4
    comfy.model_management.unload_all_models()


def test_sdxl_needs_ddpm_tables(pipe):
    from diffusers import FlowMatchEulerDiscreteScheduler

    flow = sdxl.build_pipeline(seed=0, unet=pipe.unet)
    flow.scheduler = FlowMatchEulerDiscreteScheduler()
    with pytest.raises(swd_core.SwDError, match="DDPMScheduler"):
        upstream_call(flow)
