"""The diffusers SwD loop for SDXL: ``UNet2DConditionModel`` (epsilon) + ``DDPMScheduler``'s tables.

Upstream's SDXL procedure (yresearch/swd-sdxl): times ``t / 1000`` (``1.0, 0.8, 0.6, 0.4, 0``),
start noise at the first scale, and at each step the clean prediction
``x0 = (x_t - sqrt(1 - ᾱ_t)·ε) / sqrt(ᾱ_t)``, bicubic upsampling of ``x0`` in latent space, and the
DDPM forward process to the next time with fresh noise (``DDPMScheduler.add_noise``). Time 1000 is
one past DDPM's tables (0..999): read as 999 (written out here, not taken from the pack).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

LATENT_CHANNELS = 4
#: SDXL base's VAE scale (ComfyUI ``latent_formats.SDXL``): ComfyUI's LATENT = UNet space / scale.
SCALING_FACTOR = 0.13025
#: stabilityai/stable-diffusion-xl-base-1.0 scheduler_config.json
SDXL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def ddpm_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SDXL_SCHEDULER)


@torch.no_grad()
def swd_latents(unet, times: Sequence[float], sizes: Sequence[tuple[int, int]], prompt_embeds: torch.Tensor,
                pooled: torch.Tensor, *, batch: int, seed: int, cfg: float = 1.0,
                neg_embeds: torch.Tensor | None = None, neg_pooled: torch.Tensor | None = None,
                image_size: tuple[int, int] | None = None, upscale_mode: str = "bicubic",
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                controlnet: Callable | None = None) -> torch.Tensor:
    """SwD on an SDXL UNet as upstream's procedure writes it.

    Args:
        unet: a diffusers ``UNet2DConditionModel`` (or a ``PeftModel`` around one).
        times: the schedule's ``t / 1000`` values, with or without the trailing 0.
        sizes: the latent ``(h, w)`` of every step.
        prompt_embeds: ``[B or 1, T, C]``; pooled: ``[B or 1, 1280]`` (expanded to ``batch``).
        batch, seed: ``torch.Generator().manual_seed(seed)`` on the CPU draws the start noise
            for the whole batch, then one tensor per re-noise, in float32.
        cfg: guidance on ε when above 1 (needs ``neg_embeds`` and ``neg_pooled``).
        image_size: ``(height, width)`` in pixels for SDXL's size conditioning (original and
            target size, crop 0), the same at every scale; default: the final latent x 8.
        device, dtype: where and in which dtype the UNet runs (the bench's GPU runs); the noise is
            drawn on the CPU in float32 either way, then moved.
        controlnet: ``controlnet(model_input, t, embeds, added_cond_kwargs) -> (down, mid)`` residuals
            (see `controlnet_hook`), passed to the UNet as ``down_block_additional_residuals`` /
            ``mid_block_additional_residual`` at every step; ``None``: no ControlNet.

    Returns:
        ``[batch, 4, *sizes[-1]]`` in the UNet's latent space.
    """
    from diffusers.utils.torch_utils import randn_tensor

    scheduler = ddpm_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod
    timesteps = [min(round(t * 1000), 999) for t in times if t > 0]
    if len(timesteps) != len(sizes):
        raise ValueError(f"{len(timesteps)} times for {len(sizes)} sizes")
    height, width = image_size or (sizes[-1][0] * 8, sizes[-1][1] * 8)
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).to(device, dtype)
    time_ids = time_ids.expand(batch, -1)
    embeds = prompt_embeds.to(device, dtype).expand(batch, -1, -1)
    pooled = pooled.to(device, dtype).expand(batch, -1)
    if cfg > 1:
        embeds = torch.cat([neg_embeds.to(device, dtype).expand(batch, -1, -1), embeds])
        pooled = torch.cat([neg_pooled.to(device, dtype).expand(batch, -1), pooled])
        time_ids = torch.cat([time_ids, time_ids])
    generator = torch.Generator().manual_seed(seed)
    latents = randn_tensor((batch, LATENT_CHANNELS, *sizes[0]), generator=generator).to(device, dtype)
    latents = latents * scheduler.init_noise_sigma
    for i, t in enumerate(timesteps):
        model_input = torch.cat([latents] * 2) if cfg > 1 else latents
        timestep = torch.tensor([t] * model_input.shape[0], device=device)
        added = {"text_embeds": pooled, "time_ids": time_ids}
        extra = {}
        if controlnet is not None:
            down, mid = controlnet(model_input, timestep, embeds, added)
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        eps = unet(model_input, timestep, encoder_hidden_states=embeds, added_cond_kwargs=added, **extra).sample
        if cfg > 1:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + cfg * (eps_cond - eps_uncond)
        a = alphas_cumprod[t]
        x0 = (latents - (1 - a).sqrt() * eps) / a.sqrt()
        if i + 1 == len(timesteps):
            return x0
        x0 = F.interpolate(x0, size=tuple(sizes[i + 1]), mode=upscale_mode)
        noise = randn_tensor(x0.shape, generator=generator).to(device, dtype)
        latents = scheduler.add_noise(x0, noise, torch.tensor([timesteps[i + 1]]))
    raise ValueError("no steps")


def controlnet_hook(controlnet, image: torch.Tensor, conditioning_scale: float = 1.0, scale: int = 8) -> Callable:
    """The ``controlnet`` argument of `swd_latents` for a diffusers SDXL ``ControlNetModel``.

    ``image`` (``[B or 1, 3, H, W]``, pixels in [0, 1], as diffusers' ControlNet pipelines feed it) is
    resized at every step to the latent's size x ``scale`` pixels (``reference.sd3.resize_hint``:
    centre crop + nearest-exact, what ComfyUI's ``ControlNet.get_control`` does whenever the size
    changes); an SDXL ControlNet takes the pixels themselves (no VAE). Same text, added conditioning
    and timestep as the UNet; the residuals are scaled by ``conditioning_scale``.
    """
    from .sd3 import resize_hint

    def run(model_input, timestep, embeds, added_cond_kwargs):
        h, w = model_input.shape[-2:]
        hint = resize_hint(image, h * scale, w * scale).to(model_input)
        hint = hint.expand(model_input.shape[0], -1, -1, -1)
        down, mid = controlnet(model_input, timestep, encoder_hidden_states=embeds, controlnet_cond=hint,
                               conditioning_scale=conditioning_scale, added_cond_kwargs=added_cond_kwargs,
                               return_dict=False)
        return down, mid
    return run
