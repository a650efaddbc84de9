"""SwDSampler (all-in-one) and SamplerSwD (a SAMPLER for SamplerCustom/SamplerCustomAdvanced).

Both run ComfyUI's own sampling path (CFGGuider, model loading, callbacks) with one sampler
function, `sample_swd`, so one seed gives one picture whichever node runs it.

The latent handed to ComfyUI is the *final* size: ComfyUI budgets model memory from that
shape (its progressive LCM upscale sampler starts small and under-budgets); `sample_swd`
shrinks the latent to the first scale itself.
"""
import functools
import inspect
import logging
import math

import torch
from tqdm.auto import tqdm

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from .. import swd_core
from ..swd_core import families
from . import compile_hints, feedback, regional
from ._api import SwDScheduleType, io, schema
from .controlnet_check import check_controlnets
from .model_patches import check_model_patches
from .schedule import schedule_sigmas

NODE_SAMPLER = "SwD Sampler"
NODE_SAMPLER_SAMPLER = "SwD Sampler (SAMPLER)"
log = logging.getLogger("swd")


def model_family(base_model, node: str) -> swd_core.ModelFamily:
    """The SwD family of ComfyUI's ``BaseModel`` (``model_patcher.model``); refuses other models."""
    family = swd_core.family_of_comfy_model(type(base_model))
    if family is None:
        model_type = type(getattr(base_model, "model_config", None) or base_model).__name__
        raise swd_core.SwDError(f"{node}: {families.unsupported_model_message(type(base_model), model_type)}")
    return family


def check_latent_shape(samples: torch.Tensor, node: str) -> None:
    if samples.ndim != 4:
        raise swd_core.SwDError(
            f"{node}: the latent is {samples.ndim}-D {tuple(samples.shape)}; SwD samples image latents "
            f"[batch, channels, height, width] (video and audio latents are not supported)"
        )


def fix_empty_latent_channels(model, latent: dict) -> torch.Tensor:
    """``comfy.sample.fix_empty_latent_channels`` as the stock samplers call it.

    Newer ComfyUI's empty-latent nodes add ``downscale_ratio_spacial`` to the LATENT and its
    samplers pass it on (popped from the output); the installed signature decides.
    """
    fix = comfy.sample.fix_empty_latent_channels
    ratio = latent.pop("downscale_ratio_spacial", None)
    if ratio is not None and "downscale_ratio_spacial" in inspect.signature(fix).parameters:
        return fix(model, latent["samples"], downscale_ratio_spacial=ratio)
    return fix(model, latent["samples"])


def latent_multiple(diffusion_model):
    """What every scale's latent side is rounded to: a DiT's patch (2), a UNet's downsampling factor.

    A UNet (SDXL: 3 levels, so 4) runs other sizes too, by resizing inside its skip
    connections; whole multiples keep the up- and down-sampled sides equal, as upstream's sizes are.
    """
    patch = getattr(diffusion_model, "patch_size", None)
    if patch is None and hasattr(diffusion_model, "channel_mult"):
        return 2 ** (len(diffusion_model.channel_mult) - 1)
    return 2 if patch is None else patch


def host_sigmas_and_scales(schedule, family, model_sampling, sigmas: torch.Tensor):
    """``(sigmas, scales)`` for the SIGMAS a sampler got: the schedule's own (or a tail), or other ones.

    For a DDPM family, SIGMAS equal to the schedule's raw values (a custom schedule's output,
    which SwD Schedule cannot convert without the model) are read as DDPM times, like the
    schedule itself.
    """
    ours = schedule_sigmas(schedule, family, model_sampling)
    given = sigmas.tolist()
    raw = list(schedule.sigmas)
    if family.prediction == swd_core.EPSILON and swd_core.same_sigmas(raw[len(raw) - len(given):], given) \
            and not swd_core.same_sigmas(ours[len(ours) - len(given):], given):
        sigmas = torch.tensor(ours[len(ours) - len(given):], dtype=torch.float32, device=sigmas.device)
    return sigmas, swd_core.scales_for_sigmas(schedule, sigmas.tolist(), ours)


@torch.no_grad()
def sample_swd(model, x, sigmas, extra_args=None, callback=None, disable=None, *,
               schedule: swd_core.Schedule, upscale_method: str = swd_core.DEFAULT_UPSCALE_METHOD,
               node: str = NODE_SAMPLER_SAMPLER, noise_input: bool = True, report=None):
    """ComfyUI sampler function (k-diffusion signature) running `swd_core.sample_scalewise`.

    ``x`` is ``KSAMPLER``'s noised latent at the final size; it only gives the shape, device
    and dtype. The start latent is ``model.latent_image`` (image-to-image; zeros for an empty
    latent) resized with ``area`` to the first scale and noised at ``sigmas[0]``. Noise: one
    CPU generator seeded with ``extra_args["seed"]`` draws the first-scale noise, then one
    tensor per re-noise (the noise stream of diffusers' FlowMatchLCMScheduler pipelines).
    The NOISE input's full-size tensor is not used (shrinking it would change its statistics,
    and SwD needs fresh noise at every scale); an all-zero one (``DisableNoise``, ``add_noise``
    off) is refused when ``noise_input`` says it came from the user. Masked / area conditioning
    and inpainting (``denoise_mask``, an inpainting model's ``c_concat``), prepared by ComfyUI for
    the final size, are remade at each step's size by `regional.PerScale`; inpainting blends with
    this step's noise draw.
    ``disable`` turns off the console progress bar, as in k-diffusion's samplers; ``node``
    names the node in errors. ``report(lines)``, if given, gets what the user should read on the
    node before the steps run: a schedule/model family mismatch and `swd_core.describe_run`.
    """
    extra_args = {} if extra_args is None else extra_args
    guider = model.inner_model
    base_model = guider.inner_model
    family = model_family(base_model, node)
    mismatch = families.family_mismatch_message(schedule.family, family)
    if mismatch:
        log.warning("%s: %s", node, mismatch)
    check_controlnets(guider.conds, family, node)
    check_model_patches(extra_args.get("model_options", {}), node)
    check_latent_shape(x, node)
    channels = base_model.latent_format.latent_channels
    if x.shape[1] != channels:
        raise swd_core.SwDError(
            f"the latent has {x.shape[1]} channels but the {family.name} model expects {channels}: use the "
            f"empty-latent node of the model (EmptySD3LatentImage for SD3.5 and FLUX, Empty Latent Image for "
            f"SDXL) or a VAE that matches the model"
        )
    if noise_input and torch.count_nonzero(model.noise) == 0:
        raise swd_core.SwDError(
            f"{node}: the noise is all zeros (DisableNoise, or add_noise off in SamplerCustom): SwD re-noises "
            f"the prediction with fresh noise at every scale, so without noise the model would get "
            f"(1 - sigma) * x0; use RandomNoise (SwD draws its noise from that seed)"
        )
    model_sampling = base_model.model_sampling
    sigmas, scales = host_sigmas_and_scales(schedule, family, model_sampling, sigmas.to(torch.float32))
    latent_image = model.latent_image
    max_denoise = float(sigmas[0]) >= float(model_sampling.sigma_max) * (1 - 1e-5)
    if not max_denoise and (latent_image is None or torch.count_nonzero(latent_image) == 0):
        raise swd_core.SwDError(
            f"{node}: the sigmas start at {float(sigmas[0]):.4f}, below the model's pure noise "
            f"({float(model_sampling.sigma_max):.4f}), but the latent is empty: text-to-image needs the "
            f"schedule's own sigmas from its first step; for image-to-image (the second half of a "
            f"SplitSigmas) connect a VAE Encode latent"
        )
    patch = latent_multiple(base_model.diffusion_model)
    if isinstance(patch, bool) or not isinstance(patch, int):
        raise swd_core.SwDError(f"{node}: the model's patch_size is {patch!r}, not one square patch side "
                                f"(a video model?); SwD samples image models")
    sizes = swd_core.latent_sizes(scales, x.shape[-2], x.shape[-1], patch)
    if report is not None:
        report([f"{feedback.WARNING}{mismatch}"] * bool(mismatch) + [swd_core.describe_run(sizes)])

    seed = extra_args.get("seed") or 0
    regions = regional.PerScale(model, extra_args, x.shape, node)  # masks, areas, inpainting per scale
    noise = regions.recording(swd_core.generator_noise(torch.Generator().manual_seed(seed), x.device, x.dtype))

    start = comfy.utils.common_upscale(latent_image, sizes[0][1], sizes[0][0], "area", "disabled")
    # max_denoise as KSAMPLER decides it: DDPM models start from unit-variance noise (x·sqrt(1 + σ²))
    x = model_sampling.noise_scaling(sigmas[0], noise((x.shape[0], x.shape[1], *sizes[0])), start.to(x),
                                     max_denoise=max_denoise)

    def denoiser(x, sigma):
        comfy.model_management.throw_exception_if_processing_interrupted()
        with regions.at(x.shape[-2:]):
            return model(x, sigma, **extra_args)

    def resize(x0, size):
        return comfy.utils.common_upscale(x0, size[1], size[0], upscale_method, "disabled")

    def noise_scaling(sigma, eps, x0):
        return model_sampling.noise_scaling(sigma, eps, x0)

    with tqdm(total=len(sizes), disable=disable) as bar, compile_hints.compiling(base_model.diffusion_model):
        def on_step(d):
            bar.update()
            if callback is not None:
                callback(d)

        return swd_core.sample_scalewise(denoiser, x, sigmas, sizes, noise, resize, noise_scaling, on_step)


def swd_ksampler(schedule: swd_core.Schedule, upscale_method: str, node: str = NODE_SAMPLER_SAMPLER,
                 noise_input: bool = True, report=None) -> comfy.samplers.KSAMPLER:
    """The KSAMPLER running `sample_swd`; ``report``: see there."""
    if upscale_method not in swd_core.UPSCALE_METHODS:
        raise swd_core.SwDError(f"unknown upscale_method {upscale_method!r}; use one of {swd_core.UPSCALE_METHODS}")
    return comfy.samplers.KSAMPLER(sample_swd, extra_options={"schedule": schedule, "upscale_method": upscale_method,
                                                              "node": node, "noise_input": noise_input,
                                                              "report": report})


def _upscale_input():
    return io.Combo.Input(
        "upscale_method", options=list(swd_core.UPSCALE_METHODS), default=swd_core.DEFAULT_UPSCALE_METHOD,
        tooltip="How the predicted clean latent is enlarged between scales. bicubic is what "
                "upstream SwD and diffusers use.",
    )


def _schedule_input():
    return SwDScheduleType.Input("schedule", tooltip="From SwD Schedule: latent size and sigma of every step.")


SEARCH_ALIASES = ["SwD", "scale-wise", "scale-wise distillation", "distillation"]


class SwDSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SwDSampler",
            display_name=NODE_SAMPLER,
            category="model/sampling",
            search_aliases=[*SEARCH_ALIASES, "KSampler"],
            description=(
                "KSampler for scale-wise distilled models (SwD LoRA on SD3.5, FLUX.1-dev or SDXL): "
                "each step predicts the clean latent, enlarges it to the next scale and re-noises it, so "
                "a 1024 px image costs about two full-size steps. The latent_image's size is the final size."
            ),
            inputs=[
                io.Model.Input("model", tooltip="SD3.5, FLUX.1-dev or SDXL with the SwD LoRA (SwD LoRA Loader)."),
                io.Conditioning.Input("positive", tooltip="The prompt."),
                io.Conditioning.Input("negative", tooltip="Negative prompt; ignored at cfg 1 (the default)."),
                io.Latent.Input(
                    "latent_image",
                    tooltip="Sets the final size and the batch size (EmptySD3LatentImage for SD3.5/FLUX, Empty "
                            "Latent Image for SDXL, e.g. 1024x1024). "
                            "A non-empty latent (VAE Encode) is the start image when denoise < 1.",
                ),
                _schedule_input(),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed: the same seed gives the same picture as a diffusers SwD "
                                     "loop drawing from torch.Generator().manual_seed(seed) (see README)."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance. SwD LoRAs are distilled for 1.0 (no "
                                       "guidance, one model call per step); above 1 doubles the cost."),
                _upscale_input(),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01, optional=True,
                               tooltip="Image-to-image strength: steps whose sigma is above this are "
                                       "skipped, and latent_image, resized to the first remaining scale, "
                                       "is noised to that step's sigma. 1.0 = text-to-image."),
            ],
            outputs=[io.Latent.Output(tooltip="The latent at the final size.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, schedule, seed, cfg, upscale_method,
                denoise=1.0) -> io.NodeOutput:
        family = model_family(model.model, NODE_SAMPLER)
        if not math.isfinite(cfg):
            raise swd_core.SwDError(f"cfg must be a finite number, got {cfg}")
        check_latent_shape(latent_image["samples"], NODE_SAMPLER)
        # before sampling: ComfyUI's ControlNet pre_run fails on another family's model with a bare error
        check_controlnets({"positive": [c[1] for c in positive], "negative": [c[1] for c in negative]}, family,
                          NODE_SAMPLER)
        latent = latent_image.copy()
        latent["samples"] = fix_empty_latent_channels(model, latent)
        schedule = swd_core.truncate_for_denoise(schedule, denoise)
        if schedule.sigmas[0] < 1 and torch.count_nonzero(latent["samples"]) == 0:
            raise swd_core.SwDError(
                f"the schedule starts at sigma {schedule.sigmas[0]} (< 1) but latent_image is empty: "
                f"text-to-image needs denoise 1.0 and a schedule starting at 1.0; for image-to-image "
                f"connect a VAE Encode latent"
            )
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        sigmas = torch.tensor(schedule_sigmas(schedule, family, model.get_model_object("model_sampling")),
                              dtype=torch.float32)
        # sample_swd draws all of its noise from the seed, per scale; the full-size NOISE tensor
        # KSAMPLER wants is only a shape, so no noise is drawn for it (batch_index: see README).
        placeholder = torch.zeros_like(latent["samples"])
        callback = latent_preview.prepare_callback(model, len(sigmas) - 1)
        lines: list[str] = []
        sampler = swd_ksampler(schedule, upscale_method, node=NODE_SAMPLER, noise_input=False, report=lines.extend)
        samples = guider.sample(placeholder, latent["samples"], sampler, sigmas, callback=callback,
                                denoise_mask=latent.get("noise_mask"),
                                disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        latent["samples"] = samples.to(comfy.model_management.intermediate_device())
        if family.distilled_guidance is not None:  # FLUX: the guidance is in the conditioning, not cfg
            ran, warning = families.guidance_report(family, [c[1].get("guidance") for c in positive],
                                                    schedule.family)
            lines += [f"{feedback.WARNING}{warning}"] if warning else []
            lines.append(f"Ran with {ran}.")
            if warning:
                log.warning("%s: %s", NODE_SAMPLER, warning)
        return io.NodeOutput(latent, ui=feedback.text_output(lines))


class SamplerSwD(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SamplerSwD",
            display_name=NODE_SAMPLER_SAMPLER,
            category="model/sampling/samplers",
            search_aliases=[*SEARCH_ALIASES, "SamplerSwD"],
            description=(
                "The scale-wise SwD sampler as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. "
                "Connect the SwD Schedule's sigmas as SIGMAS (or the second half of a SplitSigmas "
                "of them for image-to-image); the latent's size is the final size. The noise is "
                "drawn from the NOISE input's seed at each scale (RandomNoise; DisableNoise is refused)."
            ),
            inputs=[_schedule_input(), _upscale_input()],
            outputs=[io.Sampler.Output()],
            hidden=[io.Hidden.unique_id],  # where the sampler's messages go (feedback.send)
        )

    @classmethod
    def execute(cls, schedule, upscale_method) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        return io.NodeOutput(swd_ksampler(schedule, upscale_method,
                                          report=functools.partial(feedback.send, node_id)))
