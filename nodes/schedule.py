"""SwDSchedule: a published or custom SwD schedule, as SWD_SCHEDULE and stock SIGMAS."""
import contextvars

import torch

import comfy.model_sampling

from .. import swd_core
from ._api import SwDScheduleType, io, schema

DEFAULT_SCALES = "32, 48, 64, 80, 96, 128"
DEFAULT_SIGMAS = "1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0"


class SwDSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SwDSchedule",
            display_name="SwD Schedule",
            category="model/sampling/schedulers",
            search_aliases=["SwD", "scale-wise", "scale-wise distillation", "distillation", "scales"],
            description=(
                "Scale-wise distillation schedule: the latent size and noise level of every step. "
                "Presets are the published SwD schedules for SD3.5, FLUX.1-dev and SDXL "
                "(yandex-research/swd); 'custom' reads the two text fields."
            ),
            inputs=[
                io.Combo.Input(
                    "preset", options=[*swd_core.PRESETS, swd_core.CUSTOM], default=swd_core.DEFAULT_PRESET,
                    tooltip="A published SwD schedule (use the one that matches your SwD LoRA), or "
                            "'custom' to use the scales and sigmas below.",
                ),
                io.String.Input(
                    "scales", default=DEFAULT_SCALES,
                    tooltip="custom only: latent side length per step, increasing, as published for "
                            "1024 px (128 = 1024 px). Only the ratios to the last value matter: the "
                            "last step runs at your latent's size, any size or aspect ratio.",
                ),
                io.String.Input(
                    "sigmas", default=DEFAULT_SIGMAS,
                    tooltip="custom only: noise level per step, strictly decreasing from 1 (pure "
                            "noise) towards 0; one per scale, the final 0 optional. On SDXL these are "
                            "DDPM times t/1000, as upstream writes them (1.0 = t 999).",
                ),
            ],
            outputs=[
                SwDScheduleType.Output(display_name="schedule",
                                       tooltip="For SwD Sampler and SwD Sampler (SAMPLER)."),
                io.Sigmas.Output(display_name="sigmas",
                                 tooltip="The schedule's sigmas, for stock sampling nodes (an SDXL preset's "
                                         "DDPM times as SDXL's ComfyUI sigmas)."),
            ],
            hidden=[io.Hidden.unique_id],  # validate_inputs finds preset and scales by it
        )

    @classmethod
    def validate_inputs(cls, sigmas):
        """A bad custom schedule, reported once, under ``sigmas``.

        ComfyUI (0.3.75 and 0.33) repeats a ``validate_inputs`` failure once per argument of
        this method, so it takes one. ``preset`` and ``scales`` come from the prompt being
        queued (`remember_prompt`, run by POST /prompt before it validates); where no prompt is
        known the node checks the schedule when it runs.
        """
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        inputs = (_PROMPT.get() or {}).get(str(node_id), {}).get("inputs", {})
        preset, scales = inputs.get("preset"), inputs.get("scales")
        if not isinstance(preset, str) or preset in swd_core.PRESETS:
            return True  # no prompt known (the node checks when it runs), or a published schedule
        if preset != swd_core.CUSTOM:  # ComfyUI 0.33 refuses it first; 0.3.75 does not check a V3 combo's value
            return f"SwD Schedule: unknown preset {preset!r}; known: {', '.join([*swd_core.PRESETS, swd_core.CUSTOM])}"
        if not isinstance(scales, str) or not isinstance(sigmas, str):
            return True  # linked text: checked when the node runs
        try:
            swd_core.get_schedule(preset, scales, sigmas)
        except swd_core.SwDError as e:
            return f"SwD Schedule: custom: {e}"
        return True

    @classmethod
    def execute(cls, preset, scales, sigmas) -> io.NodeOutput:  # scales/sigmas: read only when custom
        schedule = swd_core.get_schedule(preset, scales, sigmas)
        return io.NodeOutput(schedule, torch.tensor(comfy_sigmas(schedule), dtype=torch.float32))


#: The API prompt being queued, for `SwDSchedule.validate_inputs` (task-local: one per POST /prompt).
_PROMPT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("swd_prompt", default=None)


def remember_prompt(json_data):
    """ComfyUI on_prompt handler: keep the prompt for this request's validation; returns ``json_data``."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    _PROMPT.set(prompt if isinstance(prompt, dict) else {})
    return json_data


def comfy_sigmas(schedule: swd_core.Schedule) -> list[float]:
    """The schedule as ComfyUI sigmas for stock nodes.

    Flow schedules are noise levels already. A DDPM family's preset (SDXL: times t/1000) goes
    through ComfyUI's own DDPM noise schedule with its default tables (SD1.x/SDXL's scaled
    linear betas 0.00085..0.012), as ``model_sampling.sigma(t)`` of an SDXL checkpoint gives it.
    A custom schedule has no family: its values are given as they are (the samplers read
    them in the connected model's convention).
    """
    family = swd_core.family_named(schedule.family)
    if family is None:
        return list(schedule.sigmas)
    return schedule_sigmas(schedule, family, comfy.model_sampling.ModelSamplingDiscrete())


def schedule_sigmas(schedule: swd_core.Schedule, family: swd_core.ModelFamily, model_sampling) -> list[float]:
    """The schedule's values as ComfyUI sigmas of ``model_sampling`` (SDXL: DDPM times via ``sigma(t)``)."""
    return swd_core.model_sigmas(schedule.sigmas, family.prediction,
                                 lambda t: model_sampling.sigma(torch.tensor(t, dtype=torch.float32)))
