"""What every family's path through `swd_core.run` shares: the call's arguments, schedule and size
resolution, the generator's noise, the sampling call and the output.

Imports no family: ``sd3``, ``flux`` and ``sdxl`` import this module, and the entry point
(``swd_core.diffusers.run``) looks them up in its table of `PipelineFamily` entries.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import SwDError
from ..sampling import flow_noise_scaling, generator_noise, interpolate, sample_scalewise
from ..schedules import DEFAULT_PRESET, PRESETS, Schedule, get_schedule, latent_sizes, schedule_from_values

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


@dataclass(frozen=True)
class Request:
    """The arguments of one `run` call after ``pipe``, as the caller gave them (see `run` for their
    meanings). Each family's module reads the ones its pipeline takes and ignores the others."""

    prompt: Any
    prompt_2: Any
    prompt_3: Any
    sigmas: Any
    timesteps: Any
    scales: Any
    preset: str | None
    height: int | None
    width: int | None
    target_height: int | None
    target_width: int | None
    num_inference_steps: int | None
    guidance_scale: float | None
    negative_prompt: Any
    negative_prompt_2: Any
    negative_prompt_3: Any
    num_images_per_prompt: int
    generator: Any
    latents: torch.Tensor | None
    prompt_embeds: torch.Tensor | None
    negative_prompt_embeds: torch.Tensor | None
    pooled_prompt_embeds: torch.Tensor | None
    negative_pooled_prompt_embeds: torch.Tensor | None
    output_type: str
    return_dict: bool
    upscale_method: str
    joint_attention_kwargs: dict | None
    clip_skip: int | None
    max_sequence_length: int | None
    callback: Callable[[dict], None] | None


@dataclass(frozen=True)
class PipelineFamily:
    """How `run` drives one kind of diffusers pipeline.

    Args:
        pipeline: the ``diffusers`` class whose instances (subclasses too) this entry runs,
            e.g. ``"FluxPipeline"``.
        parts: the attributes such a pipeline must have.
        generate: ``generate(pipe, request)``: the images, as `run` returns them.
    """

    pipeline: str
    parts: tuple[str, ...]
    generate: Callable[[Any, Request], SwDPipelineOutput | tuple]


def import_diffusers():
    """The ``diffusers`` module, imported on first use (``import swd_core`` needs torch alone)."""
    try:
        import diffusers
    except ImportError as e:
        raise ImportError(
            "swd_core.run drives a diffusers StableDiffusion3Pipeline, but diffusers is not installed: "
            "pip install diffusers (and peft, to apply the SwD LoRA with PeftModel.from_pretrained)"
        ) from e
    return diffusers


def floats(values, what: str) -> list[float]:
    """``values`` (a sequence or a tensor of numbers) as a list of floats; ``what`` names them in the error."""
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
        scale_list, sigma_list = floats(scales, "scales"), floats(sigmas, "sigmas")
        short_form = len(sigma_list) == len(scale_list) and bool(sigma_list) and sigma_list[-1] != 0
        schedule = schedule_from_values(scale_list, sigma_list)
    if timesteps is not None:
        given = floats(timesteps, "timesteps")
        expected = [1000.0 * s for s in schedule.sigmas[:-1]]
        lengths = (len(expected), len(expected) - 1) if short_form else (len(expected),)
        if len(given) not in lengths or any(abs(g - e) > 1e-3 + 1e-5 * abs(e) for g, e in zip(given, expected)):
            raise SwDError(
                f"timesteps {[round(t, 2) for t in given]} do not match the sigmas: SwD runs every step at "
                f"timestep = 1000 * sigma, i.e. {[round(t, 2) for t in expected]}; timesteps are optional, "
                f"leave them out"
            )
    return schedule


def check_steps(num_inference_steps: int | None, schedule: Schedule) -> None:
    """``num_inference_steps``, where given, must be the schedule's number of steps."""
    if num_inference_steps is not None and num_inference_steps != schedule.steps:
        raise SwDError(f"num_inference_steps {num_inference_steps} but the schedule has {schedule.steps} steps "
                       f"({schedule.describe()}); leave num_inference_steps out")


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


def pipeline_noise(generator, device, batch: int) -> Callable[[Sequence[int]], torch.Tensor]:
    """Standard normal float32 draws, in order, from the user's generator(s) (diffusers' ``randn_tensor`` rules).

    A CPU generator (or none: torch's global CPU generator) draws on the CPU, then moves to
    ``device``; a CUDA generator draws on its device; a list gives one generator per image.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch:
            raise SwDError(f"{len(generator)} generators for {batch} images: give one generator, or one per image")
        parts = [pipeline_noise(g, device, 1) for g in generator]
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


def sample(pipe, denoiser, x, schedule, sizes, noise, device, upscale_method, callback, sigmas=None,
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


def finish(pipe, result, schedule, sizes, output_type, return_dict):
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
