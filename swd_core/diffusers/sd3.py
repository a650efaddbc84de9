"""`swd_core.run` on a diffusers ``StableDiffusion3Pipeline`` (SD3.5 SwD, ``yresearch/swd-large-6-steps``).

The upstream README's call::

    pipe = StableDiffusion3Pipeline.from_pretrained("stabilityai/stable-diffusion-3.5-large", torch_dtype=torch.float16)
    pipe.transformer = PeftModel.from_pretrained(pipe.transformer, "yresearch/swd-large-6-steps")
    images = swd_core.run(pipe, "cat reading a newspaper", sigmas=sigmas, timesteps=sigmas[:-1] * 1000,
                          scales=scales, guidance_scale=0.0, height=scales[0] * 8, width=scales[0] * 8,
                          generator=torch.Generator().manual_seed(0)).images

The pipeline's own ``check_inputs`` and ``encode_prompt``; the transformer predicts the flow
velocity ``v`` at ``timestep = 1000 * sigma`` and the clean prediction is ``x - sigma * v``,
with classifier-free guidance on ``v`` when ``guidance_scale > 1``.
"""
from __future__ import annotations

import torch

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


def generate(pipe, r: Request):
    """`run` on a ``StableDiffusion3Pipeline`` (or any pipeline with its parts: ``encode_prompt``,
    ``transformer``, ``vae``, ``image_processor``): ``height``/``width`` are the START size."""
    guidance_scale = 1.0 if r.guidance_scale is None else r.guidance_scale
    max_sequence_length = 256 if r.max_sequence_length is None else r.max_sequence_length

    schedule = resolve_schedule(r.preset, r.scales, r.sigmas, r.timesteps)
    check_steps(r.num_inference_steps, schedule)
    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    patch = int(getattr(pipe, "patch_size", 2))
    sizes = resolve_sizes(schedule, r.height, r.width, r.target_height, r.target_width, vae_scale, patch)

    # The pipeline's own prompt checks and encoding (same calls as StableDiffusion3Pipeline.__call__).
    pipe.check_inputs(
        r.prompt, r.prompt_2, r.prompt_3, sizes[0][0] * vae_scale, sizes[0][1] * vae_scale,
        negative_prompt=r.negative_prompt, negative_prompt_2=r.negative_prompt_2,
        negative_prompt_3=r.negative_prompt_3, prompt_embeds=r.prompt_embeds,
        negative_prompt_embeds=r.negative_prompt_embeds, pooled_prompt_embeds=r.pooled_prompt_embeds,
        negative_pooled_prompt_embeds=r.negative_pooled_prompt_embeds, max_sequence_length=max_sequence_length,
    )
    if r.prompt is not None:
        batch = 1 if isinstance(r.prompt, str) else len(r.prompt)
    else:
        batch = r.prompt_embeds.shape[0]
    batch *= r.num_images_per_prompt
    device = pipe._execution_device
    do_cfg = guidance_scale > 1
    joint_attention_kwargs = r.joint_attention_kwargs
    lora_scale = (joint_attention_kwargs or {}).get("scale")
    embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
        prompt=r.prompt, prompt_2=r.prompt_2, prompt_3=r.prompt_3,
        negative_prompt=r.negative_prompt, negative_prompt_2=r.negative_prompt_2,
        negative_prompt_3=r.negative_prompt_3, do_classifier_free_guidance=do_cfg,
        prompt_embeds=r.prompt_embeds, negative_prompt_embeds=r.negative_prompt_embeds,
        pooled_prompt_embeds=r.pooled_prompt_embeds, negative_pooled_prompt_embeds=r.negative_pooled_prompt_embeds,
        device=device, clip_skip=r.clip_skip, num_images_per_prompt=r.num_images_per_prompt,
        max_sequence_length=max_sequence_length, lora_scale=lora_scale,
    )
    if do_cfg:
        embeds = torch.cat([negative_embeds, embeds])
        pooled = torch.cat([negative_pooled, pooled])

    transformer = pipe.transformer
    model_dtype = next(transformer.parameters()).dtype
    channels = transformer.config.in_channels
    noise = pipeline_noise(r.generator, device, batch)
    x = start_latent(r.latents, noise, (batch, channels, *sizes[0]), device)

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        model_in = torch.cat([x, x]) if do_cfg else x
        t = sigma * 1000
        v = transformer(
            hidden_states=model_in.to(model_dtype),
            timestep=torch.cat([t, t]) if do_cfg else t,
            encoder_hidden_states=embeds,
            pooled_projections=pooled,
            joint_attention_kwargs=joint_attention_kwargs,
            return_dict=False,
        )[0]
        if do_cfg:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + guidance_scale * (v_cond - v_uncond)
        return x - sigma.view(-1, 1, 1, 1) * v.to(torch.float32)

    result = sample(pipe, denoiser, x, schedule, sizes, noise, device, r.upscale_method, r.callback)
    return finish(pipe, result, schedule, sizes, r.output_type, r.return_dict)


#: Any other ``DiffusionPipeline`` with SD3's parts runs this way (``StableDiffusion3Pipeline``
#: and pipelines built like it), so this entry comes last in `swd_core.diffusers.PIPELINES`.
PIPELINE = PipelineFamily("DiffusionPipeline", ("encode_prompt", "vae", "image_processor", "transformer"), generate)

__all__ = ["PIPELINE", "generate"]
