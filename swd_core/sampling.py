"""The scale-wise sampling loop (SwD, arXiv:2503.16397), host-independent.

The loop only needs callables: a denoiser ``(x, sigma) -> x0``, a resize, a noise source and
a noise-scaling rule. ComfyUI's adapter (``nodes/sampler.py``) supplies its own model
wrapper, upscale helper and ``model_sampling.noise_scaling``; ``swd_core.diffusers`` supplies
diffusers'.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .errors import SwDError

#: The latent resize methods; the names are ComfyUI's latent upscale methods.
UPSCALE_METHODS = ("bicubic", "bilinear", "nearest-exact", "area", "bislerp")
DEFAULT_UPSCALE_METHOD = "bicubic"  # what diffusers' FlowMatchLCMScheduler and upstream use

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseSource = Callable[[Sequence[int]], torch.Tensor]
Resize = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]
NoiseScaling = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def flow_noise_scaling(sigma: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Rectified-flow forward process: ``x_σ = σ·noise + (1 − σ)·x0``."""
    return sigma * noise + (1.0 - sigma) * x0


def interpolate(x: torch.Tensor, size: tuple[int, int], method: str = DEFAULT_UPSCALE_METHOD) -> torch.Tensor:
    """Resize ``x`` ``[B, C, H, W]`` to ``size = (H', W')`` with ``torch.nn.functional.interpolate``.

    The same call as diffusers' ``FlowMatchLCMScheduler.step`` (no ``align_corners``).
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode=method)


def generator_noise(generator: torch.Generator, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> NoiseSource:
    """Noise source: standard normal draws from a CPU ``generator`` in float32, moved to ``device``.

    Drawing on the CPU makes a seed give the same noise on every device, and the draws
    follow each other in one stream (diffusers' ``randn_tensor`` with a CPU generator).
    ``device="cpu"`` is explicit so that a default device set elsewhere
    (``torch.set_default_device("cuda")`` by another node pack) cannot move the draw off
    the generator's device.
    """
    def draw(shape: Sequence[int]) -> torch.Tensor:
        draw = torch.randn(tuple(shape), generator=generator, device="cpu", dtype=torch.float32)
        return draw.to(device=device, dtype=dtype)
    return draw


@torch.no_grad()
def sample_scalewise(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    sizes: Sequence[tuple[int, int]],
    noise: NoiseSource,
    resize: Resize = interpolate,
    noise_scaling: NoiseScaling = flow_noise_scaling,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Scale-wise sampling: predict x0, resize it to the next scale, re-noise it with fresh noise.

    Step ``i`` evaluates ``x0 = denoiser(x, σ_i)`` at ``sizes[i]``; if there is a next
    step, ``x0`` (the clean prediction, never the noisy sample) is resized to ``sizes[i+1]``
    and re-noised as ``noise_scaling(σ_{i+1}, noise(shape), x0)``. With ``σ_N = 0`` the
    result is the last prediction. This is diffusers' ``FlowMatchLCMScheduler.step`` with
    ``scale_factors``, written as a stateless k-diffusion-style loop.

    Args:
        denoiser: ``(x [B, C, h, w], sigma [B]) -> x0 [B, C, h, w]``.
        x: the noised start latent ``[B, C, *sizes[0]]`` at ``σ_0``.
        sigmas: ``[N + 1]`` noise levels.
        sizes: ``N`` latent sizes ``(h, w)``, one per step.
        noise: ``shape -> tensor``, called once per re-noise in step order.
        resize: ``(x0, (h, w)) -> x0`` at the new size.
        noise_scaling: ``(σ, noise, x0) -> x_σ``; the host's forward process.
        callback: called after every model evaluation with ``{"x", "i", "sigma",
            "sigma_hat", "denoised"}`` (tensors at the current scale).

    Returns:
        The final latent ``[B, C, *sizes[-1]]`` (noised at ``σ_N`` if that is not 0).

    Raises:
        SwDError: if sizes and sigmas disagree, ``x`` is not at ``sizes[0]``, or the model
            returns NaN or inf.
    """
    steps = len(sigmas) - 1
    if steps != len(sizes):
        raise SwDError(f"{steps} sigma steps but {len(sizes)} scales")
    if tuple(x.shape[-2:]) != tuple(sizes[0]):
        raise SwDError(f"the start latent is {tuple(x.shape[-2:])}, the first scale is {tuple(sizes[0])}")
    s_in = x.new_ones([x.shape[0]])
    for i in range(steps):
        sigma = sigmas[i]
        denoised = denoiser(x, sigma * s_in)
        if not torch.isfinite(denoised).all():
            raise SwDError(
                f"the model returned NaN or inf at step {i + 1}/{steps} (sigma {float(sigma):.4f}, "
                f"latent {sizes[i][0]}x{sizes[i][1]}): check the model's dtype (try fp32/bf16 "
                f"instead of fp16), the LoRA strength and the conditioning"
            )
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if i + 1 < steps:
            denoised = resize(denoised, tuple(sizes[i + 1]))
        sigma_next = sigmas[i + 1]
        if sigma_next > 0:
            x = noise_scaling(sigma_next, noise(denoised.shape), denoised)
        else:
            x = denoised
    return x
