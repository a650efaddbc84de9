"""A benchmark case, and what a model family's module gives the bench.

A family module (``sd3.py``, ``flux.py``, ``sdxl.py``, registered in ``cases.FAMILIES``)
provides:

* ``NAME``, ``TEXT_TOKENS`` (text tokens in the joint attention or, for a UNet, the
  cross-attention), ``LATENT_CHANNELS``, ``REFERENCE_LABEL`` (the reference loop's row in the
  report); optionally ``BASELINE_STEPS`` and ``BASELINE_SCHEDULER`` (the full-size stock
  baseline's steps and ``BasicScheduler`` scheduler; default ``cases.BASELINE_STEPS``, 28, and
  ``"simple"``) and ``SCHEDULE_VALUES`` (how the report names the presets' values when they are
  not ComfyUI's sigmas: SDXL's ``"DDPM times t/1000"``);
* ``CASES``: ``{"cpu": (...), "gpu": (...), "tiny-cpu": (...), "tiny-gpu": (...)}`` of :class:`Case`;
* ``flop_model(config) -> flops.AnyFlopModel`` (the one derivation: a token ``flops.FlopModel``
  or a per-level ``flops.UNetFlopModel``) and ``flop_model_of_comfy(diffusion_model)`` (the same
  model read off ComfyUI's module, a check);
* ``describe(config) -> str`` (the report's model line);
* ``build_models(case, device, dtype, seed) -> (reference_model, comfy_model_patcher)``;
* ``conditioning(batch, text_tokens, generator, image_size) -> Conditioning`` (ComfyUI's, the
  bare forward's and the reference loop's inputs, all from the same random tensors;
  ``image_size``, the final ``(height, width)`` in pixels, is what SDXL's size conditioning
  embeds; the other families ignore it);
* ``reference_latents(model, schedule, sizes, cond, *, batch, seed, device, dtype)``: the
  diffusers reference loop (``harness.reference``), returning model-space latents;
* ``reference_attention(model) -> str``: the attention processor the reference runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Case:
    """One model and schedule to time."""

    key: str
    title: str
    config: dict  # the diffusers config the random model is built from
    preset: str  # SwD schedule preset
    pixels: int  # final image side in pixels (latent = pixels / 8)
    gpu_dtype: str = "bfloat16"  # dtype on CUDA; CPU runs use float32
    note: str = ""
    family: str = "sd3"  # module name in cases.FAMILIES


def random_model(model_class, config: dict, device: torch.device, dtype: torch.dtype, seed: int):
    """A diffusers ``model_class`` built from ``config`` with seeded random weights, in eval mode
    on ``device`` in ``dtype``. The global RNG is left as it was; the weights are initialised in
    ``dtype`` on ``device`` (no float32 CPU copy of a full-size model first)."""
    old = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            if dtype.is_floating_point:
                torch.set_default_dtype(dtype)
            with device:
                model = model_class.from_config(config)
        finally:
            torch.set_default_dtype(old)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
