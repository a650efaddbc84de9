"""`swd_core.run` on a diffusers ``FluxPipeline`` (FLUX.1-dev SwD, ``yresearch/swd_flux``).

FLUX's own prompt encoding, latent packing and image ids; the transformer is called with
``timestep = sigma`` and FLUX's embedded (distilled) guidance, one model call per step: there is
no classifier-free guidance and no negative prompt. The loop is the one every family runs.
"""
from __future__ import annotations

import torch

from ..errors import SwDError
from ..families import family_named
from .common import (
    PipelineFamily,
    Request,
    check_steps,
    finish,
    pipeline_noise,
    resolve_schedule,
    resolve_sizes,
    sample,
    start_latent,
)

#: FLUX.1-dev's embedded guidance the published SwD LoRA was distilled with (``yresearch/swd_flux``).
FLUX_GUIDANCE = family_named("FLUX").distilled_guidance


def generate(pipe, r: Request):
    """`run` on a ``FluxPipeline``: its own prompt encoding, latent packing and image ids, the
    transformer called with ``timestep = sigma`` and the embedded guidance, the same loop."""
    if r.negative_prompt is not None:
        raise SwDError("FLUX.1-dev SwD runs with FLUX's embedded guidance (guidance_scale), one model call per "
                       "step: negative prompts (true CFG) are not supported here")
    guidance = FLUX_GUIDANCE if r.guidance_scale is None else float(r.guidance_scale)
    schedule = resolve_schedule(r.preset, r.scales, r.sigmas, r.timesteps)
    check_steps(r.num_inference_steps, schedule)
    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    sizes = resolve_sizes(schedule, r.height, r.width, r.target_height, r.target_width, vae_scale, 2)
    max_sequence_length = 512 if r.max_sequence_length is None else r.max_sequence_length
    pipe.check_inputs(r.prompt, r.prompt_2, sizes[0][0] * vae_scale, sizes[0][1] * vae_scale,
                      prompt_embeds=r.prompt_embeds, pooled_prompt_embeds=r.pooled_prompt_embeds,
                      max_sequence_length=max_sequence_length)
    device = pipe._execution_device
    joint_attention_kwargs = r.joint_attention_kwargs
    embeds, pooled, text_ids = pipe.encode_prompt(
        prompt=r.prompt, prompt_2=r.prompt_2, prompt_embeds=r.prompt_embeds,
        pooled_prompt_embeds=r.pooled_prompt_embeds, device=device, num_images_per_prompt=r.num_images_per_prompt,
        max_sequence_length=max_sequence_length, lora_scale=(joint_attention_kwargs or {}).get("scale"))
    batch = embeds.shape[0]
    transformer = pipe.transformer
    model_dtype = next(transformer.parameters()).dtype
    channels = transformer.config.in_channels // 4  # packed 2x2 patches
    noise = pipeline_noise(r.generator, device, batch)
    x = start_latent(r.latents, noise, (batch, channels, *sizes[0]), device)
    guidance_in = (torch.full((batch,), guidance, device=device, dtype=torch.float32)
                   if transformer.config.guidance_embeds else None)

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        packed = pipe._pack_latents(x.to(model_dtype), b, c, h, w)
        image_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, device, model_dtype)
        v = transformer(hidden_states=packed, timestep=sigma.to(model_dtype), guidance=guidance_in,
                        pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=text_ids,
                        img_ids=image_ids, joint_attention_kwargs=joint_attention_kwargs, return_dict=False)[0]
        v = pipe._unpack_latents(v, h * vae_scale, w * vae_scale, vae_scale).to(torch.float32)
        return x - sigma.view(-1, 1, 1, 1) * v

    result = sample(pipe, denoiser, x, schedule, sizes, noise, device, r.upscale_method, r.callback)
    return finish(pipe, result, schedule, sizes, r.output_type, r.return_dict)


PIPELINE = PipelineFamily("FluxPipeline", ("encode_prompt", "vae", "image_processor", "transformer"), generate)

__all__ = ["FLUX_GUIDANCE", "PIPELINE", "generate"]
