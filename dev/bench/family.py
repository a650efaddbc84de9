"""A benchmark case, and what a model family's module gives the bench.

A family module (``sd3.py``; FLUX and SDXL add one each, registered in ``cases.FAMILIES``)
provides:

* ``NAME``, ``TEXT_TOKENS`` (text tokens in the joint attention), ``LATENT_CHANNELS``,
  ``REFERENCE_LABEL`` (the reference loop's row in the report); optionally ``BASELINE_STEPS``
  (the full-size stock baseline's steps; default ``cases.BASELINE_STEPS``, 28);
* ``CASES``: ``{"cpu": (...), "gpu": (...), "tiny-cpu": (...), "tiny-gpu": (...)}`` of :class:`Case`;
* ``flop_model(config) -> flops.FlopModel`` (the one derivation) and
  ``flop_model_of_comfy(diffusion_model)`` (the same model read off ComfyUI's module, a check);
* ``describe(config) -> str`` (the report's model line);
* ``build_models(case, device, dtype, seed) -> (reference_model, comfy_model_patcher)``;
* ``conditioning(batch, text_tokens, generator) -> Conditioning`` (ComfyUI's, the bare
  forward's and the reference loop's inputs, all from the same random tensors);
* ``reference_latents(model, schedule, sizes, cond, *, batch, seed, device, dtype)``: the
  diffusers reference loop (``harness.reference``), returning model-space latents;
* ``reference_attention(model) -> str``: the attention processor the reference runs.
"""
from __future__ import annotations

from dataclasses import dataclass


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
