"""SwD for diffusers users: ``swd_core.run(pipe, prompt, ...)`` on a ``StableDiffusion3Pipeline``.

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

diffusers is imported only when `run` is called: ``import swd_core`` needs torch alone.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import SwDError
from .sampling import (
    DEFAULT_UPSCALE_METHOD,
    UPSCALE_METHODS,
    flow_noise_scaling,
    generator_noise,
    interpolate,
    sample_scalewise,
)
from .schedules import DEFAULT_PRESET, PRESETS, Schedule, get_schedule, latent_sizes, schedule_from_values

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class SwDPipelineOutput:
    """What `run` returns.

    Attributes:
        images: ``output_type`` ``"pil"``: a list of ``PIL.Image``; ``"np"``: an array
            ``[B, H, W, 3]`` in [0, 1]; ``"pt"``: a tensor ``[B, 3, H, W]`` in [0, 1];
            ``"latent"``: the final latent (same as ``latents``), as diffusers' pipelines return it.
        latents: the final latent ``[B, 16, h, w]`` in the transformer's space (before the VAE's
            ``scaling_factor``/``shift_factor``), float32.
        sizes: the latent ``(h, w)`` of every step.
        sigmas: the ``N + 1`` noise levels used (ending in 0).
    """

    images: Any
    latents: torch.Tensor
    sizes: list = field(default_factory=list)
    sigmas: list = field(default_factory=list)


def _diffusers():
    try:
        import diffusers
    except ImportError as e:
        raise ImportError(
            "swd_core.run drives a diffusers StableDiffusion3Pipeline, but diffusers is not installed: "
            "pip install diffusers (and peft, to apply the SwD LoRA with PeftModel.from_pretrained)"
        ) from e
    return diffusers


def _floats(values, what: str) -> list[float]:
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.detach().flatten().cpu().tolist()]
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as e:
        raise SwDError(f"{what} must be a list or 1-D tensor of numbers, got {values!r}") from e


def resolve_schedule(preset: str | None = None, scales=None, sigmas=None, timesteps=None) -> Schedule:
    """The `Schedule` `run` uses: a preset name, or ``scales`` + ``sigmas`` as the READMEs give them.

    ``sigmas`` may omit the trailing 0 (the first upstream README lists one sigma per step).
    ``timesteps`` are only checked: they must be ``1000 * sigma`` for every step; the first
    README's ``timesteps = sigmas[:-1] * 1000`` with ``sigmas`` given without the trailing 0
    (one value short) is accepted as that README's way of writing the same schedule.
    Parsing and validation are the ComfyUI node's (`schedules.schedule_from_values`).
    """
    short_form = False
    if preset is not None:
        if scales is not None or sigmas is not None:
            raise SwDError("give either preset or scales and sigmas, not both")
        if preset not in PRESETS:
            raise SwDError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        schedule = get_schedule(preset)
    elif scales is None and sigmas is None:
        schedule = get_schedule(DEFAULT_PRESET)
    elif scales is None or sigmas is None:
        missing = "scales" if scales is None else "sigmas"
        raise SwDError(f"{missing} missing: give scales and sigmas together, or a preset "
                       f"({', '.join(PRESETS)})")
    else:
        scale_list, sigma_list = _floats(scales, "scales"), _floats(sigmas, "sigmas")
        short_form = len(sigma_list) == len(scale_list) and bool(sigma_list) and sigma_list[-1] != 0
        schedule = schedule_from_values(scale_list, sigma_list)
    if timesteps is not None:
        given = _floats(timesteps, "timesteps")
        expected = [1000.0 * s for s in schedule.sigmas[:-1]]
        lengths = (len(expected), len(expected) - 1) if short_form else (len(expected),)
        if len(given) not in lengths or any(abs(g - e) > 1e-3 + 1e-5 * abs(e) for g, e in zip(given, expected)):
            raise SwDError(
                f"timesteps {[round(t, 2) for t in given]} do not match the sigmas: SwD runs every step at "
                f"timestep = 1000 * sigma, i.e. {[round(t, 2) for t in expected]}; timesteps are optional, "
                f"leave them out"
            )
    return schedule


def resolve_sizes(schedule: Schedule, height=None, width=None, target_height=None, target_width=None,
                  vae_scale_factor: int = 8, patch: int = 2) -> list[tuple[int, int]]:
    """Latent ``(h, w)`` per step from the pixel sizes `run` takes.

    * ``height``/``width`` are the START size in pixels, as the upstream README passes them
      (``scales[0] * 8``): every later step keeps the schedule's ratio ``scales[i] / scales[0]``.
    * ``target_height``/``target_width`` are the FINAL image size in pixels; the steps keep the
      ratio ``scales[i] / scales[-1]`` to it (`latent_sizes`). If ``height``/``width`` are also
      given they must be the start size this gives.
    * With neither, the schedule runs at its own sizes (``scales``, 1024 px for the presets).

    One of a pair alone means a square. Pixel sizes must be multiples of ``vae_scale_factor * patch``.
    """
    step = vae_scale_factor * patch

    def pair(h, w, what):
        if h is None and w is None:
            return None
        h, w = (w if h is None else h), (h if w is None else w)
        for name, v in ((f"{what[0]}", h), (f"{what[1]}", w)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or v < step:
                raise SwDError(f"{name} {v!r} is not a whole number of pixels >= {step}")
            if int(v) % step:
                raise SwDError(f"{name} {int(v)} px is not a multiple of {step} (the VAE's {vae_scale_factor}x times "
                               f"the transformer's {patch}x{patch} patches); use {int(v) - int(v) % step or step}")
        return int(h) // vae_scale_factor, int(w) // vae_scale_factor

    start = pair(height, width, ("height", "width"))
    target = pair(target_height, target_width, ("target_height", "target_width"))
    scales = schedule.scales
    if target is not None:
        sizes = latent_sizes(scales, *target, patch)
        if start is not None and tuple(sizes[0]) != start:
            raise SwDError(
                f"height x width {start[0] * vae_scale_factor}x{start[1] * vae_scale_factor} is the START size, but "
                f"with target {target[0] * vae_scale_factor}x{target[1] * vae_scale_factor} this schedule starts at "
                f"{sizes[0][0] * vae_scale_factor}x{sizes[0][1] * vae_scale_factor}: leave height/width out"
            )
        return sizes
    if start is None:
        start = (scales[0], scales[0])

    def final(s):
        return int(math.floor(s * scales[-1] / scales[0] / patch + 0.5)) * patch

    sizes = latent_sizes(scales, final(start[0]), final(start[1]), patch)
    if tuple(sizes[0]) != start:
        raise SwDError(
            f"a start size of {start[0] * vae_scale_factor}x{start[1] * vae_scale_factor} px does not keep this "
            f"schedule's ratios (scales {list(scales)}); give the final size as target_height/target_width instead"
        )
    for h, w in sizes:
        if h % patch or w % patch:
            raise SwDError(f"latent size {h}x{w} is not a multiple of the transformer's patch size {patch}: "
                           f"use even scales")
    return sizes


def _noise(generator, device, batch: int) -> Callable[[Sequence[int]], torch.Tensor]:
    """Standard normal float32 draws, in order, from the user's generator(s) (diffusers' ``randn_tensor`` rules).

    A CPU generator (or none: torch's global CPU generator) draws on the CPU, then moves to
    ``device``; a CUDA generator draws on its device; a list gives one generator per image.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch:
            raise SwDError(f"{len(generator)} generators for {batch} images: give one generator, or one per image")
        parts = [_noise(g, device, 1) for g in generator]
        return lambda shape: torch.cat([p((1, *shape[1:])) for p in parts])
    if generator is None or generator.device.type == "cpu":
        return generator_noise(generator, device, torch.float32)
    return lambda shape: torch.randn(tuple(shape), generator=generator, device=generator.device,
                                     dtype=torch.float32).to(device)


def start_latent(latents, noise, shape: tuple, device) -> torch.Tensor:
    """The pure-noise start latent ``shape`` at the first step: the user's ``latents`` (checked, float32)
    or the first draw of ``noise``."""
    if latents is None:
        return noise(shape)
    if tuple(latents.shape) != shape:
        raise SwDError(f"latents {tuple(latents.shape)} must be the start latent {shape} (batch, channels, "
                       f"first step's size)")
    return latents.to(device=device, dtype=torch.float32)


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
    (`swd_core.diffusers_sdxl.run_sdxl`), as upstream's SDXL call writes it: ``sigmas`` are DDPM
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
    diffusers = _diffusers()
    if not isinstance(pipe, diffusers.DiffusionPipeline) or not all(
            hasattr(pipe, a) for a in ("encode_prompt", "vae", "image_processor")) or not (
            hasattr(pipe, "transformer") or isinstance(pipe, diffusers.StableDiffusionXLPipeline)):
        raise SwDError(f"swd_core.run needs a diffusers StableDiffusion3Pipeline, FluxPipeline or "
                       f"StableDiffusionXLPipeline, got {type(pipe).__name__}")
    if output_type not in OUTPUT_TYPES:
        raise SwDError(f"output_type {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
    if upscale_method not in UPSCALE_METHODS or upscale_method == "bislerp":
        raise SwDError(f"upscale_method {upscale_method!r} is not one of bicubic, bilinear, nearest-exact, area")
    n = num_images_per_prompt
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SwDError(f"num_images_per_prompt must be a whole number >= 1, got {num_images_per_prompt!r}")
    if isinstance(pipe, diffusers.StableDiffusionXLPipeline):
        from .diffusers_sdxl import run_sdxl

        return run_sdxl(pipe, prompt, prompt_2=prompt_2, sigmas=sigmas, timesteps=timesteps, scales=scales,
                        preset=preset, height=height, width=width, target_height=target_height,
                        target_width=target_width, num_inference_steps=num_inference_steps,
                        guidance_scale=guidance_scale, negative_prompt=negative_prompt,
                        negative_prompt_2=negative_prompt_2, num_images_per_prompt=num_images_per_prompt,
                        generator=generator, latents=latents, prompt_embeds=prompt_embeds,
                        negative_prompt_embeds=negative_prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
                        negative_pooled_prompt_embeds=negative_pooled_prompt_embeds, output_type=output_type,
                        return_dict=return_dict, upscale_method=upscale_method, clip_skip=clip_skip,
                        callback=callback)
    if isinstance(pipe, diffusers.FluxPipeline):
        return _run_flux(pipe, prompt, prompt_2=prompt_2, sigmas=sigmas, timesteps=timesteps, scales=scales,
                         preset=preset, height=height, width=width, target_height=target_height,
                         target_width=target_width, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale, negative_prompt=negative_prompt,
                         num_images_per_prompt=num_images_per_prompt, generator=generator, latents=latents,
                         prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
                         output_type=output_type, return_dict=return_dict, upscale_method=upscale_method,
                         joint_attention_kwargs=joint_attention_kwargs, max_sequence_length=max_sequence_length,
                         callback=callback)
    guidance_scale = 1.0 if guidance_scale is None else guidance_scale
    max_sequence_length = 256 if max_sequence_length is None else max_sequence_length

    schedule = resolve_schedule(preset, scales, sigmas, timesteps)
    if num_inference_steps is not None and num_inference_steps != schedule.steps:
        raise SwDError(f"num_inference_steps {num_inference_steps} but the schedule has {schedule.steps} steps "
                       f"({schedule.describe()}); leave num_inference_steps out")
    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    patch = int(getattr(pipe, "patch_size", 2))
    sizes = resolve_sizes(schedule, height, width, target_height, target_width, vae_scale, patch)

    # The pipeline's own prompt checks and encoding (same calls as StableDiffusion3Pipeline.__call__).
    pipe.check_inputs(
        prompt, prompt_2, prompt_3, sizes[0][0] * vae_scale, sizes[0][1] * vae_scale,
        negative_prompt=negative_prompt, negative_prompt_2=negative_prompt_2, negative_prompt_3=negative_prompt_3,
        prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
        pooled_prompt_embeds=pooled_prompt_embeds, negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
        max_sequence_length=max_sequence_length,
    )
    if prompt is not None:
        batch = 1 if isinstance(prompt, str) else len(prompt)
    else:
        batch = prompt_embeds.shape[0]
    batch *= num_images_per_prompt
    device = pipe._execution_device
    do_cfg = guidance_scale > 1
    lora_scale = (joint_attention_kwargs or {}).get("scale")
    embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
        prompt=prompt, prompt_2=prompt_2, prompt_3=prompt_3,
        negative_prompt=negative_prompt, negative_prompt_2=negative_prompt_2, negative_prompt_3=negative_prompt_3,
        do_classifier_free_guidance=do_cfg,
        prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
        pooled_prompt_embeds=pooled_prompt_embeds, negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
        device=device, clip_skip=clip_skip, num_images_per_prompt=num_images_per_prompt,
        max_sequence_length=max_sequence_length, lora_scale=lora_scale,
    )
    if do_cfg:
        embeds = torch.cat([negative_embeds, embeds])
        pooled = torch.cat([negative_pooled, pooled])

    transformer = pipe.transformer
    model_dtype = next(transformer.parameters()).dtype
    channels = transformer.config.in_channels
    noise = _noise(generator, device, batch)
    x = start_latent(latents, noise, (batch, channels, *sizes[0]), device)

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

    result = _sample(pipe, denoiser, x, schedule, sizes, noise, device, upscale_method, callback)
    return _finish(pipe, result, schedule, sizes, output_type, return_dict)


#: FLUX.1-dev's embedded guidance the published SwD LoRA was distilled with (``yresearch/swd_flux``).
FLUX_GUIDANCE = 4.5


def _run_flux(pipe, prompt, *, prompt_2, sigmas, timesteps, scales, preset, height, width, target_height,
              target_width, num_inference_steps, guidance_scale, negative_prompt, num_images_per_prompt, generator,
              latents, prompt_embeds, pooled_prompt_embeds, output_type, return_dict, upscale_method,
              joint_attention_kwargs, max_sequence_length, callback):
    """`run` on a ``FluxPipeline``: its own prompt encoding, latent packing and image ids, the
    transformer called with ``timestep = sigma`` and the embedded guidance, the same loop."""
    if negative_prompt is not None:
        raise SwDError("FLUX.1-dev SwD runs with FLUX's embedded guidance (guidance_scale), one model call per "
                       "step: negative prompts (true CFG) are not supported here")
    guidance = FLUX_GUIDANCE if guidance_scale is None else float(guidance_scale)
    schedule = resolve_schedule(preset, scales, sigmas, timesteps)
    if num_inference_steps is not None and num_inference_steps != schedule.steps:
        raise SwDError(f"num_inference_steps {num_inference_steps} but the schedule has {schedule.steps} steps "
                       f"({schedule.describe()}); leave num_inference_steps out")
    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    sizes = resolve_sizes(schedule, height, width, target_height, target_width, vae_scale, 2)
    max_sequence_length = 512 if max_sequence_length is None else max_sequence_length
    pipe.check_inputs(prompt, prompt_2, sizes[0][0] * vae_scale, sizes[0][1] * vae_scale,
                      prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
                      max_sequence_length=max_sequence_length)
    device = pipe._execution_device
    embeds, pooled, text_ids = pipe.encode_prompt(
        prompt=prompt, prompt_2=prompt_2, prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
        device=device, num_images_per_prompt=num_images_per_prompt, max_sequence_length=max_sequence_length,
        lora_scale=(joint_attention_kwargs or {}).get("scale"))
    batch = embeds.shape[0]
    transformer = pipe.transformer
    model_dtype = next(transformer.parameters()).dtype
    channels = transformer.config.in_channels // 4  # packed 2x2 patches
    noise = _noise(generator, device, batch)
    x = start_latent(latents, noise, (batch, channels, *sizes[0]), device)
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

    result = _sample(pipe, denoiser, x, schedule, sizes, noise, device, upscale_method, callback)
    return _finish(pipe, result, schedule, sizes, output_type, return_dict)


def _sample(pipe, denoiser, x, schedule, sizes, noise, device, upscale_method, callback, sigmas=None,
            noise_scaling=flow_noise_scaling) -> torch.Tensor:
    """`sample_scalewise` with the pipeline's progress bar; ``callback`` after every step.

    ``sigmas``: the noise levels of the loop (default: the schedule's, flow models).
    """
    sigma_tensor = torch.tensor(schedule.sigmas if sigmas is None else sigmas, dtype=torch.float32, device=device)
    with pipe.progress_bar(total=schedule.steps) as bar:
        def on_step(d):
            bar.update()
            if callback is not None:
                callback(d)

        return sample_scalewise(denoiser, x, sigma_tensor, sizes, noise, resize=lambda t, s: interpolate(
            t, s, upscale_method), noise_scaling=noise_scaling, callback=on_step)


def _finish(pipe, result, schedule, sizes, output_type, return_dict):
    """Decode (unless ``output_type == "latent"``) and wrap the result as diffusers pipelines do."""
    if output_type == "latent":
        images = result
    else:
        vae = pipe.vae
        z = result / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)  # SDXL's VAE in fp16
        if upcast:
            vae.to(torch.float32)
        decoded = vae.decode(z.to(vae.dtype), return_dict=False)[0]
        if upcast:
            vae.to(torch.float16)
        images = pipe.image_processor.postprocess(decoded, output_type=output_type)
    pipe.maybe_free_model_hooks()
    if not return_dict:
        return (images,)
    return SwDPipelineOutput(images=images, latents=result, sizes=[tuple(s) for s in sizes],
                             sigmas=list(schedule.sigmas))
