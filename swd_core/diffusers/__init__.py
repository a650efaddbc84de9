"""SwD for diffusers users: ``swd_core.run(pipe, prompt, ...)`` on a ``StableDiffusion3Pipeline``,
``FluxPipeline`` or ``StableDiffusionXLPipeline``.

The upstream README's call, with the same arguments and meanings, on this pack's sampling loop::

    pipe = StableDiffusion3Pipeline.from_pretrained("stabilityai/stable-diffusion-3.5-large", torch_dtype=torch.float16)
    pipe.transformer = PeftModel.from_pretrained(pipe.transformer, "yresearch/swd-large-6-steps")
    images = swd_core.run(pipe, "cat reading a newspaper", sigmas=sigmas, timesteps=sigmas[:-1] * 1000,
                          scales=scales, guidance_scale=0.0, height=scales[0] * 8, width=scales[0] * 8,
                          generator=torch.Generator().manual_seed(0)).images

Prompt encoding (``pipe.encode_prompt``), the transformer call and VAE decoding
(``pipe.vae`` with its ``scaling_factor``/``shift_factor``, ``pipe.image_processor``) are the
pipeline's own; the loop is `sample_scalewise` (the same one the ComfyUI nodes run) with
`generator_noise`, so a seed gives the picture ComfyUI's ``SwDSampler`` gives for that seed.
``pipe.scheduler`` is not used: SwD's sigmas are final (no shift).

The package's shape: `common` holds what every family shares (schedule and size resolution,
noise, the sampling call, the output) and imports no family; `sd3`, `flux` and `sdxl` each drive
one kind of pipeline and import `common`; `run`, here, checks the call and looks the pipeline up
in `PIPELINES`. Adding a family is a module with its `PipelineFamily` and an entry in that table.

diffusers is imported only when `run` is called: ``import swd_core`` needs torch alone.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import SwDError
from ..sampling import DEFAULT_UPSCALE_METHOD, UPSCALE_METHODS
from . import flux, sd3, sdxl
from .common import OUTPUT_TYPES, PipelineFamily, Request, SwDPipelineOutput, import_diffusers

#: The pipelines `run` drives, the first that matches: SDXL and FLUX by their diffusers class,
#: then any other ``DiffusionPipeline`` with SD3's parts as SD3.5.
PIPELINES: tuple[PipelineFamily, ...] = (sdxl.PIPELINE, flux.PIPELINE, sd3.PIPELINE)


def pipeline_family(pipe) -> PipelineFamily | None:
    """The `PIPELINES` entry that runs ``pipe``, or ``None`` if none does (diffusers imported here)."""
    diffusers = import_diffusers()
    family = next((f for f in PIPELINES if isinstance(pipe, getattr(diffusers, f.pipeline))), None)
    if family is None or not all(hasattr(pipe, a) for a in family.parts):
        return None
    return family


@torch.no_grad()
def run(
    pipe,
    prompt: str | list[str] | None = None,
    *,
    prompt_2: str | list[str] | None = None,
    prompt_3: str | list[str] | None = None,
    sigmas=None,
    timesteps=None,
    scales=None,
    preset: str | None = None,
    height: int | None = None,
    width: int | None = None,
    target_height: int | None = None,
    target_width: int | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    negative_prompt: str | list[str] | None = None,
    negative_prompt_2: str | list[str] | None = None,
    negative_prompt_3: str | list[str] | None = None,
    num_images_per_prompt: int = 1,
    generator: torch.Generator | list[torch.Generator] | None = None,
    latents: torch.Tensor | None = None,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    pooled_prompt_embeds: torch.Tensor | None = None,
    negative_pooled_prompt_embeds: torch.Tensor | None = None,
    output_type: str = "pil",
    return_dict: bool = True,
    upscale_method: str = DEFAULT_UPSCALE_METHOD,
    joint_attention_kwargs: dict | None = None,
    clip_skip: int | None = None,
    max_sequence_length: int | None = None,
    callback: Callable[[dict], None] | None = None,
) -> SwDPipelineOutput | tuple:
    """Generate with SwD on a diffusers ``StableDiffusion3Pipeline``, ``FluxPipeline`` or
    ``StableDiffusionXLPipeline`` whose transformer (UNet) carries the SwD LoRA.

    The upstream READMEs' calls (same names, same meanings), sampling with this pack's loop.
    For FLUX.1-dev, ``guidance_scale`` is FLUX's embedded (distilled) guidance, one model call
    per step, as ``FluxPipeline`` reads it (upstream passes 4.5; the default is the family's
    distilled value); there is no classifier-free guidance and no negative prompt. For SDXL
    (`swd_core.diffusers.sdxl`), as upstream's SDXL call writes it: ``sigmas`` are DDPM
    times ``t / 1000``, ``timesteps`` include the trailing 0, ``height``/``width`` are the FINAL
    size, and ``pipe.scheduler`` gives the DDPM tables.

    Args:
        pipe: a ``StableDiffusion3Pipeline`` (or one with the same parts: ``encode_prompt``,
            ``transformer``, ``vae``, ``image_processor``), with the SwD LoRA applied, e.g.
            ``pipe.transformer = PeftModel.from_pretrained(pipe.transformer, lora_path)``.
            ``pipe.scheduler`` is not used.
        prompt, prompt_2, prompt_3, negative_prompt, negative_prompt_2, negative_prompt_3,
            prompt_embeds, pooled_prompt_embeds, negative_prompt_embeds, negative_pooled_prompt_embeds,
            num_images_per_prompt, clip_skip, max_sequence_length, joint_attention_kwargs:
            as in ``StableDiffusion3Pipeline.__call__`` (passed to ``pipe.encode_prompt`` and the transformer).
        sigmas: noise levels, one per step, with or without the trailing 0 (list or tensor).
        timesteps: optional; only checked to be ``sigmas * 1000`` per step (the first README
            passes ``sigmas[:-1] * 1000`` with ``sigmas`` lacking the trailing 0: accepted).
        scales: latent side lengths per step (x8 for pixels), e.g. ``[32, 48, 64, 80, 96, 128]``.
        preset: instead of ``scales``/``sigmas``, a name from ``swd_core.PRESETS``
            (e.g. ``"SD3.5 Large, 6 steps"``). With neither, ``swd_core.DEFAULT_PRESET``.
        height, width: the START size in pixels, as the README passes them (``scales[0] * 8``);
            every step keeps the ratio ``scales[i] / scales[0]`` to it, so the README's call
            ends at ``scales[-1] * 8`` = 1024 px. Default: ``scales[0] * 8``.
        target_height, target_width: the FINAL image size in pixels instead (multiples of 16):
            the steps keep the ratio ``scales[i] / scales[-1]`` (`swd_core.latent_sizes`), so
            ``preset=..., target_height=768, target_width=1344`` gives a 768x1344 image.
        num_inference_steps: optional; if given it must equal the number of scales.
        guidance_scale: SD3.5: classifier-free guidance on the velocity when > 1 (SwD LoRAs are
            distilled for 0 or 1: no guidance; default 1). FLUX: the embedded guidance (default 4.5).
        generator: a ``torch.Generator`` (or one per image). It draws the start noise for the
            whole batch first, then one draw per re-noised step, float32: a CPU generator
            draws on the CPU and the noise is moved to the pipeline's device, so a seed gives
            the same picture on every device and in ComfyUI's ``SwDSampler``. ``None``: torch's
            global CPU generator.
        latents: optional start latent ``[B, 16, h0, w0]`` at the first step's size (pure noise,
            sigma 1) instead of drawing it.
        output_type: ``"pil"`` (default), ``"np"``, ``"pt"`` or ``"latent"``.
        return_dict: ``False`` returns ``(images,)`` as diffusers pipelines do.
        upscale_method: how the clean prediction is resized between steps (``"bicubic"``, as upstream).
        callback: called after every step with ``{"x", "i", "sigma", "denoised"}``.

    Returns:
        `SwDPipelineOutput` with ``.images`` (and ``.latents``, ``.sizes``, ``.sigmas``).

    Raises:
        ImportError: diffusers is not installed.
        SwDError: inconsistent schedule, sizes or arguments (the message says what to change).
    """
    request = Request(**{k: v for k, v in locals().items() if k != "pipe"})  # every argument but pipe, as given
    family = pipeline_family(pipe)
    if family is None:
        raise SwDError(f"swd_core.run needs a diffusers StableDiffusion3Pipeline, FluxPipeline or "
                       f"StableDiffusionXLPipeline, got {type(pipe).__name__}")
    if output_type not in OUTPUT_TYPES:
        raise SwDError(f"output_type {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
    if upscale_method not in UPSCALE_METHODS or upscale_method == "bislerp":
        raise SwDError(f"upscale_method {upscale_method!r} is not one of bicubic, bilinear, nearest-exact, area")
    n = num_images_per_prompt
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SwDError(f"num_images_per_prompt must be a whole number >= 1, got {num_images_per_prompt!r}")
    return family.generate(pipe, request)


__all__ = ["PIPELINES", "PipelineFamily", "SwDPipelineOutput", "pipeline_family", "run"]
