"""swd_core.run on a diffusers FluxPipeline (upstream's FLUX call) = the diffusers reference = SwDSampler.

The tiny FluxPipeline of ``harness.standins.flux.build_pipeline`` (real diffusers/transformers
classes at a small size) stands in for FLUX.1-dev; ComfyUI's FLUX model gets the same weights.
"""
import pytest
import torch

import swd_core
from harness.reference import flux as reference
from harness.standins import flux

SIGMAS = [1.0000, 0.8956, 0.7363, 0.6007, 0.0]  # yresearch/swd_flux's README code
SCALES = [16, 20, 24, 32]  # upstream's 64, 80, 96, 128 at a quarter: 128 px -> 256 px
PROMPT = "a cat reading a newspaper"


@pytest.fixture(scope="module")
def pipe():
    return flux.build_pipeline(seed=0)


def upstream_call(pipe, seed=0, **kw):
    """The README's call, on swd_core.run instead of upstream's hub pipeline."""
    sigmas = torch.tensor(SIGMAS)
    kw = {"guidance_scale": 4.5, **kw}
    return swd_core.run(pipe, PROMPT, sigmas=sigmas, timesteps=sigmas[:-1] * 1000, scales=SCALES,
                        height=SCALES[0] * 8, width=SCALES[0] * 8, max_sequence_length=512,
                        generator=torch.Generator().manual_seed(seed), **kw)


def test_upstream_call_equals_the_reference_and_decodes(pipe):
    out = upstream_call(pipe, output_type="pt")
    embeds, pooled, text_ids = pipe.encode_prompt(PROMPT, prompt_2=None, max_sequence_length=512)
    sizes = [(16, 16), (20, 20), (24, 24), (32, 32)]
    ref = reference.swd_latents(pipe.transformer, SIGMAS, sizes, embeds, pooled, text_ids, batch=1, seed=0,
                                guidance=4.5)
    assert out.sizes == sizes
    assert out.latents.shape == (1, 16, 32, 32)  # unpacked, as the SD3 path returns it
    assert (out.latents - ref).abs().max().item() <= 1e-4
    assert out.images.shape == (1, 3, 256, 256) and torch.isfinite(out.images).all()
    # the embedded guidance reaches the model: another value, another picture
    other = upstream_call(pipe, output_type="latent")
    assert torch.equal(other.latents, out.latents)
    assert not torch.allclose(upstream_call(pipe, output_type="latent", guidance_scale=1.5).latents, out.latents)


def test_run_equals_swd_sampler_on_comfyui_s_flux(host, pipe):
    import comfy.model_management

    out = swd_core.run(pipe, PROMPT, preset="FLUX.1-dev, 4 steps (README code sigmas)", target_height=256,
                       target_width=320, generator=torch.Generator().manual_seed(3), output_type="latent")
    embeds, pooled, _ = pipe.encode_prompt(PROMPT, prompt_2=None, max_sequence_length=512)
    model = flux.comfy_model(pipe.transformer)
    cond = host.node("FluxGuidance").execute([[embeds, {"pooled_output": pooled}]], 4.5).args[0]
    schedule = host.node("SwDSchedule").execute("FLUX.1-dev, 4 steps (README code sigmas)", "", "").args[0]
    latent = {"samples": torch.zeros(1, 16, 32, 40)}
    ours = host.node("SwDSampler").execute(model, cond, cond, latent, schedule, 3, 1.0, "bicubic").args[0]["samples"]
    assert (model.model.process_latent_in(ours) - out.latents).abs().max().item() <= 1e-4
    comfy.model_management.unload_all_models()


def test_flux_refuses_a_negative_prompt(pipe):
    with pytest.raises(swd_core.SwDError, match="embedded guidance"):
        upstream_call(pipe, negative_prompt="blurry")
