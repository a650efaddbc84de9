"""SwDSchedule: a published or custom SwD schedule, as SWD_SCHEDULE and stock SIGMAS."""
import contextvars
import json

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
        """A bad custom schedule, reported once, under the input that is wrong.

        ComfyUI (0.3.75 and 0.33) files a ``validate_inputs`` failure under every argument of this
        method, so it takes one; ``preset`` and ``scales`` come from the prompt being queued
        (`remember_prompt`, run by POST /prompt before it validates), and the input at fault is noted
        for `file_under_wrong_input`, which moves the error there in POST /prompt's answer. Where no
        prompt is known the node checks the schedule when it runs.
        """
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        inputs = (_PROMPT.get() or {}).get(str(node_id), {}).get("inputs", {})
        preset, scales = inputs.get("preset"), inputs.get("scales")
        if not isinstance(preset, str) or preset in swd_core.PRESETS:
            return True  # no prompt known (the node checks when it runs), or a published schedule
        if preset == swd_core.CUSTOM and not (isinstance(scales, str) and isinstance(sigmas, str)):
            return True  # linked text: checked when the node runs
        try:  # an unknown preset: ComfyUI 0.33 refuses it first; 0.3.75 does not check a V3 combo's value
            swd_core.get_schedule(preset, scales, sigmas)
        except swd_core.SwDError as e:
            wrong = _WRONG_INPUT.get()
            if wrong is not None and e.field in ("preset", "scales"):
                wrong[str(node_id)] = e.field
            return f"SwD Schedule: {'custom: ' if preset == swd_core.CUSTOM else ''}{e}"
        return True

    @classmethod
    def execute(cls, preset, scales, sigmas) -> io.NodeOutput:  # scales/sigmas: read only when custom
        schedule = swd_core.get_schedule(preset, scales, sigmas)
        return io.NodeOutput(schedule, torch.tensor(comfy_sigmas(schedule), dtype=torch.float32))


#: The API prompt being queued, for `SwDSchedule.validate_inputs` (task-local: one per POST /prompt).
_PROMPT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("swd_prompt", default=None)
#: SwD Schedule node id -> the input its bad custom schedule is wrong in, when that is not ``sigmas``
#: (where ComfyUI files the error), noted while one POST /prompt validates (see `file_under_wrong_input`).
_WRONG_INPUT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("swd_wrong_input", default=None)


def remember_prompt(json_data):
    """ComfyUI on_prompt handler: keep the prompt for this request's validation; returns ``json_data``."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    _PROMPT.set(prompt if isinstance(prompt, dict) else {})
    return json_data


async def file_under_wrong_input(request, handler):
    """aiohttp middleware of POST /prompt: a bad custom schedule's error under the input that is wrong.

    ComfyUI files SwD Schedule's validation error under ``sigmas`` (`SwDSchedule.validate_inputs`);
    where ``scales`` or ``preset`` is at fault, this moves it there in the 400 answer's ``node_errors``,
    which the frontends show by input (the input's slot, 1.49.6's "rejected the value for ..."), or drops
    it where ComfyUI has already filed one there. Other requests, answers and nodes pass unchanged.
    """
    from aiohttp import web

    if request.method != "POST" or request.path not in ("/prompt", "/api/prompt"):
        return await handler(request)
    wrong: dict[str, str] = {}
    token = _WRONG_INPUT.set(wrong)
    try:
        response = await handler(request)
    finally:
        _WRONG_INPUT.reset(token)
    if not wrong or response.status != 400 or not isinstance(getattr(response, "body", None), bytes):
        return response
    answer = json.loads(response.body)
    for node_id, field in wrong.items():
        errors = answer.get("node_errors", {}).get(node_id, {}).get("errors", [])
        ours = [e for e in errors if e.get("type") == "custom_validation_failed"
                and (e.get("extra_info") or {}).get("input_name") == "sigmas"]
        said = any((e.get("extra_info") or {}).get("input_name") == field for e in errors)
        for error in ours:
            if said:  # ComfyUI 0.33 refuses an unknown preset itself ("Value not in list"): once is enough
                errors.remove(error)
                continue
            error["extra_info"]["input_name"] = field
            error["details"] = field + error.get("details", "")[len("sigmas"):]
    return web.json_response(answer, status=response.status)


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
