"""The diffusers SwD loop for SD3/SD3.5: ``SD3Transformer2DModel`` + ``FlowMatchLCMScheduler``."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

LATENT_CHANNELS = 16
#: The SD3 VAE latent format (ComfyUI ``latent_formats.SD3``): ComfyUI's LATENT = model space / scale + shift.
SCALING_FACTOR, SHIFT_FACTOR = 1.5305, 0.0609


@torch.no_grad()
def x0(transformer, x: torch.Tensor, sigma: float, prompt_embeds: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """The clean-latent prediction ``x - sigma * v`` ``[B, 16, h, w]`` of ``transformer`` (a diffusers
    ``SD3Transformer2DModel`` or a ``PeftModel`` around one) for ``x`` at ``sigma`` (timestep ``1000 sigma``)."""
    v = transformer(hidden_states=x, encoder_hidden_states=prompt_embeds, pooled_projections=pooled,
                    timestep=torch.full((x.shape[0],), sigma * 1000)).sample
    return x - sigma * v


@torch.no_grad()
def swd_latents(transformer, sigmas: Sequence[float], sizes: Sequence[tuple[int, int]], prompt_embeds: torch.Tensor,
                pooled: torch.Tensor, *, batch: int, seed: int, cfg: float = 1.0,
                neg_embeds: torch.Tensor | None = None, neg_pooled: torch.Tensor | None = None,
                scale_factors: Sequence[float] | None = None, upscale_mode: str = "bicubic",
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                controlnet: Callable | None = None) -> torch.Tensor:
    """SwD with diffusers' ``FlowMatchLCMScheduler(shift=1.0, scale_factors=...)``, as its pipelines run it.

    The loop of ``StableDiffusion3Pipeline.__call__`` (start latents drawn first from the
    generator, classifier-free guidance on the velocity when ``cfg > 1``), except that
    ``step()`` gets the generator, as upstream SwD's ``run`` does: the stock pipeline calls
    ``step()`` without it, so its re-noising comes from the global RNG and no seed reproduces it.

    Args:
        transformer: a diffusers ``SD3Transformer2DModel`` (or a ``PeftModel`` around one).
        sigmas: ``N`` step sigmas, or ``N + 1`` with the trailing 0 (it is dropped).
        sizes: the latent ``(h, w)`` of every step; ``sizes[0]`` is the start noise's size.
        prompt_embeds: ``[B or 1, T, 4096]``; pooled: ``[B or 1, 2048]`` (expanded to ``batch``).
        batch: images per call. seed: ``torch.Generator().manual_seed(seed)`` on the CPU draws
            the start noise for the whole batch, then one tensor per re-noise, in float32.
        cfg: guidance scale; above 1 needs ``neg_embeds`` ``[B or 1, T, 4096]`` and ``neg_pooled``.
        scale_factors: sizes relative to the first step (default: ``sizes[i][0] / sizes[0][0]``).
        upscale_mode: ``F.interpolate`` mode the scheduler resizes the clean prediction with.
        controlnet: ``controlnet(model_input, t, embeds, pooled) -> block samples`` (see
            `controlnet_hook`), passed to the transformer as ``block_controlnet_hidden_states``
            at every step; ``None``: no ControlNet.

    Returns:
        ``[batch, 16, *sizes[-1]]`` in the transformer's latent space (see `to_comfy_latent`).
    """
    from diffusers import FlowMatchLCMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    step_sigmas = list(sigmas[:-1] if len(sigmas) == len(sizes) + 1 else sigmas)
    if scale_factors is None:
        scale_factors = [s[0] / sizes[0][0] for s in sizes[1:]]
    scheduler = FlowMatchLCMScheduler(shift=1.0, scale_factors=list(scale_factors), upscale_mode=upscale_mode)
    scheduler.set_timesteps(sigmas=step_sigmas, device=device)
    generator = torch.Generator().manual_seed(seed)
    latents = randn_tensor((batch, LATENT_CHANNELS, *sizes[0]), generator=generator, device=device, dtype=dtype)
    embeds = prompt_embeds.to(device, dtype).expand(batch, -1, -1)
    pooled = pooled.to(device, dtype).expand(batch, -1)
    if cfg > 1:
        embeds = torch.cat([neg_embeds.to(device, dtype).expand(batch, -1, -1), embeds])
        pooled = torch.cat([neg_pooled.to(device, dtype).expand(batch, -1), pooled])
    for t in scheduler.timesteps:
        model_input = torch.cat([latents] * 2) if cfg > 1 else latents
        extra = {} if controlnet is None else {
            "block_controlnet_hidden_states": controlnet(model_input, t, embeds, pooled)}
        v = transformer(hidden_states=model_input, timestep=t.expand(model_input.shape[0]),
                        encoder_hidden_states=embeds, pooled_projections=pooled, return_dict=False, **extra)[0]
        if cfg > 1:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + cfg * (v_cond - v_uncond)
        latents = scheduler.step(v, t, latents, generator=generator, return_dict=False)[0]
    return latents


def to_comfy_latent(latents: torch.Tensor) -> torch.Tensor:
    """Transformer space -> ComfyUI's LATENT space (``latent_formats.SD3.process_latent_out``)."""
    return latents / SCALING_FACTOR + SHIFT_FACTOR


# --------------------------------------------------------------------------- ControlNet

def resize_hint(image: torch.Tensor, height: int, width: int, mode: str = "nearest-exact") -> torch.Tensor:
    """``[B, 3, H, W]`` -> ``[B, 3, height, width]``: a centre crop to the target's aspect ratio,
    then ``F.interpolate(mode)``, as ``comfy.utils.common_upscale(..., crop="center")`` does it
    (ComfyUI's ``ControlNet.get_control`` resizes the hint with its ``upscale_algorithm``,
    "nearest-exact")."""
    old_h, old_w = image.shape[-2:]
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    image = image[..., y:old_h - y, x:old_w - x]
    return torch.nn.functional.interpolate(image, size=(height, width), mode=mode)


@torch.no_grad()
def hint_latent(vae, image: torch.Tensor, size: tuple[int, int], scale: int = 8) -> torch.Tensor:
    """The ControlNet input for a latent of ``size``: ``image`` (``[B, 3, H, W]`` in [0, 1])
    resized to ``size * scale`` pixels (`resize_hint`), encoded by the diffusers VAE (the
    distribution's mode: ComfyUI's VAE encode takes the mean; diffusers' SD3 ControlNet pipeline
    samples it) and scaled by ``scaling_factor`` with **no** shift (the SD3 ControlNets'
    convention: diffusers' pipeline uses shift 0 when ``force_zeros_for_pooled_projection``,
    ComfyUI sets ``shift_factor = 0`` for them)."""
    pixels = resize_hint(image, size[0] * scale, size[1] * scale)
    latent = vae.encode(pixels.to(vae.dtype) * 2 - 1).latent_dist.mode()
    return latent * vae.config.scaling_factor


def controlnet_hook(controlnet, hint_for_size: Callable, conditioning_scale: float = 1.0,
                    zero_pooled: bool = True) -> Callable:
    """The ``controlnet`` argument of `swd_latents` for a diffusers ``SD3ControlNetModel``.

    ``hint_for_size((h, w))`` gives the hint latent for a latent of that size (e.g. `hint_latent`,
    cached per size): the hint follows the latent's size at every scale, as ComfyUI rebuilds it.
    The ControlNet gets zero pooled projections when ``zero_pooled`` (diffusers' pipeline with
    ``force_zeros_for_pooled_projection``; ComfyUI's ``comfy.cldm.mmdit.ControlNet`` zeroes ``y``
    itself) and the same text embeddings and timestep as the transformer.
    """
    def run(model_input, t, embeds, pooled):
        hint = hint_for_size(tuple(model_input.shape[-2:])).to(model_input)
        hint = hint.expand(model_input.shape[0], -1, -1, -1)
        return controlnet(hidden_states=model_input, controlnet_cond=hint, conditioning_scale=conditioning_scale,
                          timestep=t.expand(model_input.shape[0]), encoder_hidden_states=embeds,
                          pooled_projections=torch.zeros_like(pooled) if zero_pooled else pooled,
                          return_dict=False)[0]
    return run
