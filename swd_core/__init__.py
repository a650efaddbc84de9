"""Host-independent SwD (scale-wise distillation) code: schedules, the sampling loop, LoRA scales.

Imports nothing from ComfyUI; ``swd_core.pipeline`` (the diffusers entry point) imports
diffusers lazily.
"""
from .errors import SwDError
from .schedules import (
    CUSTOM,
    DEFAULT_PRESET,
    PRESETS,
    Schedule,
    align_sigmas,
    get_schedule,
    latent_sizes,
    parse_schedule,
    truncate_for_denoise,
)
from .sampling import (
    DEFAULT_UPSCALE_METHOD,
    UPSCALE_METHODS,
    flow_noise_scaling,
    generator_noise,
    interpolate,
    sample_scalewise,
)
from .pipeline import SwDPipelineOutput, run

__all__ = [
    "CUSTOM", "DEFAULT_PRESET", "DEFAULT_UPSCALE_METHOD", "PRESETS", "Schedule", "SwDError",
    "UPSCALE_METHODS", "align_sigmas", "flow_noise_scaling", "generator_noise", "get_schedule",
    "interpolate", "latent_sizes", "parse_schedule", "run", "sample_scalewise", "SwDPipelineOutput",
    "truncate_for_denoise",
]
