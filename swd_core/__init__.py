"""Host-independent SwD (scale-wise distillation) code: schedules, the sampling loop, LoRA scales.

Imports nothing from ComfyUI; ``swd_core.diffusers`` (the diffusers entry point, `run`)
imports diffusers lazily. ``swd_core.families`` is the table of model families SwD runs on.
"""
from .cost import describe_run, full_size_steps
from .diffusers import SwDPipelineOutput, run
from .errors import SwDError
from .families import EPSILON, FAMILIES, FLOW, ModelFamily, family_named, family_of_comfy_model
from .regions import scale_area
from .sampling import (
    DEFAULT_UPSCALE_METHOD,
    UPSCALE_METHODS,
    flow_noise_scaling,
    generator_noise,
    interpolate,
    sample_scalewise,
)
from .schedules import (
    CUSTOM,
    DEFAULT_PRESET,
    PRESETS,
    Schedule,
    ddpm_timesteps,
    format_numbers,
    get_schedule,
    latent_sizes,
    model_sigmas,
    parse_schedule,
    preset_texts,
    same_sigmas,
    scales_for_sigmas,
    schedule_from_values,
    truncate_for_denoise,
)

__all__ = [
    "CUSTOM", "DEFAULT_PRESET", "DEFAULT_UPSCALE_METHOD", "EPSILON", "FAMILIES", "FLOW", "ModelFamily", "PRESETS",
    "Schedule", "ddpm_timesteps", "family_named", "model_sigmas", "same_sigmas",
    "SwDError", "UPSCALE_METHODS", "family_of_comfy_model", "flow_noise_scaling", "generator_noise",
    "describe_run", "full_size_steps", "format_numbers", "preset_texts",
    "get_schedule", "interpolate", "latent_sizes", "parse_schedule", "run", "sample_scalewise", "scale_area",
    "scales_for_sigmas", "schedule_from_values", "SwDPipelineOutput", "truncate_for_denoise",
]
