"""`swd_core.run` on a diffusers ``StableDiffusionXLPipeline`` (SDXL-SwD, ``yresearch/swd-sdxl``).

Upstream's call, on this pack's loop::

    pipe = StableDiffusionXLPipeline.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0", ...)
    pipe.scheduler = DDPMScheduler.from_pretrained("stabilityai/stable-diffusion-xl-base-1.0", subfolder="scheduler")
    pipe.unet = PeftModel.from_pretrained(pipe.unet, "yresearch/swd-sdxl")
    sigmas = [1.0, 0.8, 0.6, 0.4, 0.0]
    images = swd_core.run(pipe, prompt, sigmas=sigmas, timesteps=torch.tensor(sigmas) * 1000,
                          scales=[64, 80, 96, 128], guidance_scale=1.0, height=1024, width=1024,
                          generator=torch.Generator().manual_seed(0)).images

SDXL predicts noise (ε) on the DDPM process. The loop runs, as ComfyUI does, in the variance-
exploding form of that process, ``x = x_t / sqrt(ᾱ_t) = x0 + σ_t·noise`` with
``σ_t = sqrt((1 − ᾱ_t) / ᾱ_t)`` from ``pipe.scheduler.alphas_cumprod``: the UNet gets
``x / sqrt(1 + σ²)`` (= ``x_t``), the clean prediction is ``x − σ·ε``, the re-noise is
``x0 + σ·noise`` (= the DDPM forward process, divided by ``sqrt(ᾱ)``), and the start is
unit-variance noise at the first time. Same generator stream as the other families.
"""
from __future__ import annotations

import math

import torch

from ..errors import SwDError
from ..schedules import ddpm_timesteps
from .common import (
    PipelineFamily,
    Request,
    check_steps,
    finish,
    floats,
    pipeline_noise,
    resolve_schedule,
    resolve_sizes,
    sample,
    start_latent,
)

#: The preset `run` uses on SDXL when neither ``preset`` nor ``scales``/``sigmas`` is given.
SDXL_PRESET = "SDXL, 4 steps"


def ve_noise_scaling(sigma: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The DDPM forward process in variance-exploding form: ``x0 + σ·noise``."""
    return x0 + sigma * noise


def generate(pipe, r: Request):
    """`run` on a ``StableDiffusionXLPipeline``: ``height``/``width`` are the FINAL size (upstream's
    SDXL call), ``sigmas`` DDPM times ``t / 1000``, ``timesteps`` optional (checked, trailing 0 or not)."""
    preset = SDXL_PRESET if r.preset is None and r.scales is None and r.sigmas is None else r.preset
    schedule = resolve_schedule(preset, r.scales, r.sigmas)
    if r.timesteps is not None:
        given = floats(r.timesteps, "timesteps")
        expected = [1000.0 * v for v in schedule.sigmas]
        if len(given) not in (len(expected), len(expected) - 1) or any(
                abs(g - e) > 1e-3 for g, e in zip(given, expected)):
            raise SwDError(f"timesteps {[round(t, 2) for t in given]} do not match the sigmas: SDXL SwD writes "
                           f"timesteps = 1000 * sigma, i.e. {[round(t, 2) for t in expected]}; leave them out")
    check_steps(r.num_inference_steps, schedule)
    height, width, target_height, target_width = r.height, r.width, r.target_height, r.target_width
    if (height is not None or width is not None) and (target_height is not None or target_width is not None):
        raise SwDError("on SDXL height/width are already the final size (upstream's call): give them or "
                       "target_height/target_width, not both")
    final_h = target_height if target_height is not None else height
    final_w = target_width if target_width is not None else width
    if final_h is None and final_w is None:
        final_h = final_w = schedule.scales[-1] * 8
    alphas_cumprod = getattr(pipe.scheduler, "alphas_cumprod", None)
    if alphas_cumprod is None:
        raise SwDError(f"pipe.scheduler is {type(pipe.scheduler).__name__}, which has no DDPM tables "
                       f"(alphas_cumprod): set pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config) "
                       f"as upstream's SDXL call does")
    unet = pipe.unet
    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    multiple = 2 ** (len(unet.config.block_out_channels) - 1)  # the UNet's downsampling
    sizes = resolve_sizes(schedule, None, None, final_h, final_w, vae_scale, multiple)
    image_size = (sizes[-1][0] * vae_scale, sizes[-1][1] * vae_scale)

    guidance_scale = r.guidance_scale
    do_cfg = (1.0 if guidance_scale is None else guidance_scale) > 1
    pipe.check_inputs(r.prompt, r.prompt_2, *image_size, None, negative_prompt=r.negative_prompt,
                      negative_prompt_2=r.negative_prompt_2, prompt_embeds=r.prompt_embeds,
                      negative_prompt_embeds=r.negative_prompt_embeds, pooled_prompt_embeds=r.pooled_prompt_embeds,
                      negative_pooled_prompt_embeds=r.negative_pooled_prompt_embeds)
    device = pipe._execution_device
    embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
        prompt=r.prompt, prompt_2=r.prompt_2, device=device, num_images_per_prompt=r.num_images_per_prompt,
        do_classifier_free_guidance=do_cfg, negative_prompt=r.negative_prompt,
        negative_prompt_2=r.negative_prompt_2, prompt_embeds=r.prompt_embeds,
        negative_prompt_embeds=r.negative_prompt_embeds, pooled_prompt_embeds=r.pooled_prompt_embeds,
        negative_pooled_prompt_embeds=r.negative_pooled_prompt_embeds, clip_skip=r.clip_skip)
    batch = embeds.shape[0]
    encoder_2 = getattr(pipe, "text_encoder_2", None)
    projection = encoder_2.config.projection_dim if encoder_2 is not None else pooled.shape[-1]
    # SDXL's size conditioning: the final size at every scale (what the pipeline passes for its one size)
    time_ids = pipe._get_add_time_ids(image_size, (0, 0), image_size, dtype=embeds.dtype,
                                      text_encoder_projection_dim=projection).to(device).repeat(batch, 1)
    if do_cfg:
        embeds, pooled = torch.cat([negative_embeds, embeds]), torch.cat([negative_pooled, pooled])
        time_ids = torch.cat([time_ids, time_ids])

    raw_times = ddpm_timesteps(schedule.sigmas)
    times = [round(t) for t in raw_times]
    if any(abs(t - r) > 1e-6 for t, r in zip(times, raw_times)):
        raise SwDError(f"SDXL SwD runs at whole DDPM times t = 1000 * sigma; sigmas {list(schedule.sigmas)} give "
                       f"{raw_times}")
    ac = alphas_cumprod.to(torch.float64)
    sigmas_ve = [math.sqrt((1 - float(ac[t])) / float(ac[t])) for t in times] + [0.0]
    model_dtype = next(unet.parameters()).dtype
    noise = pipeline_noise(r.generator, device, batch)
    start = start_latent(r.latents, noise, (batch, unet.config.in_channels, *sizes[0]), device)
    x = start * math.sqrt(1 + sigmas_ve[0] ** 2)  # unit-variance noise at the first time, in VE form

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = float(sigma[0])
        step = min(range(len(times)), key=lambda k: abs(sigmas_ve[k] - s))
        model_in = (x / math.sqrt(1 + s * s)).to(model_dtype)
        model_in = torch.cat([model_in, model_in]) if do_cfg else model_in
        t = torch.full((model_in.shape[0],), times[step], device=device)
        eps = unet(model_in, t, encoder_hidden_states=embeds,
                   added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)[0]
        eps = eps.to(torch.float32)
        if do_cfg:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
        return x - s * eps

    result = sample(pipe, denoiser, x, schedule, sizes, noise, device, r.upscale_method, r.callback,
                    sigmas=sigmas_ve, noise_scaling=ve_noise_scaling)
    return finish(pipe, result, schedule, sizes, r.output_type, r.return_dict)


#: SDXL needs no ``transformer``: its model is ``pipe.unet``.
PIPELINE = PipelineFamily("StableDiffusionXLPipeline", ("encode_prompt", "vae", "image_processor"), generate)

__all__ = ["PIPELINE", "SDXL_PRESET", "generate", "ve_noise_scaling"]
