"""Model families SwD runs on: the one table that says which host models a schedule fits.

A family names the base model a published SwD schedule (and its LoRA) was distilled for, and
how each host recognises that model: ComfyUI by its model class (``comfy.model_base.SD3``), by
exact class, since subclasses such as ``Flux2`` or ``Chroma`` are other models. Adding a family
(FLUX presets, SDXL) is adding an entry here and its presets in ``schedules.py``; the nodes
and ``run`` look families up, they never name one.
"""
from __future__ import annotations

from dataclasses import dataclass

FLOW = "flow"
EPSILON = "epsilon"


@dataclass(frozen=True)
class ModelFamily:
    """One base-model family.

    Args:
        name: what presets and messages call it, e.g. ``"SD3.5"``.
        comfy_models: ComfyUI model classes of this family, ``"module.Class"`` of the
            ``BaseModel`` subclass (``model_patcher.model``), matched exactly.
        prediction: what the model predicts, which says how its schedules are written:
            ``FLOW`` (rectified flow): the values are noise levels σ, 1 is pure noise and the
            re-noise is ``σ·noise + (1 − σ)·x0``; ``EPSILON`` (DDPM noise prediction, SDXL): the
            values are DDPM times ``t / 1000`` (``schedules.ddpm_timesteps``), which each host
            turns into its own noise levels (ComfyUI: ``model_sampling.sigma(t)``).
        distilled_guidance: for guidance-distilled models (FLUX.1-dev), the embedded guidance
            value the published SwD LoRA was distilled with; ``None`` where the model has none.
    """

    name: str
    comfy_models: tuple[str, ...]
    prediction: str = "flow"  # FLOW or EPSILON
    distilled_guidance: float | None = None


#: Every family the samplers run. SD1.5 and other models have no SwD schedule here yet.
FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("SD3.5", ("comfy.model_base.SD3",)),
    ModelFamily("FLUX", ("comfy.model_base.Flux",), distilled_guidance=4.5),  # yresearch/swd_flux
    ModelFamily("SDXL", ("comfy.model_base.SDXL",), prediction=EPSILON),  # yresearch/swd-sdxl
)


def family_named(name: str | None) -> ModelFamily | None:
    """The family called ``name`` (a schedule's ``family``), or ``None``."""
    return next((f for f in FAMILIES if f.name == name), None)


def comfy_model_name(model_class: type) -> str:
    """``"module.Class"`` of a ComfyUI model class, as `ModelFamily.comfy_models` lists them."""
    return f"{model_class.__module__}.{model_class.__qualname__}"


def family_of_comfy_model(model_class: type) -> ModelFamily | None:
    """The family of a ComfyUI ``BaseModel`` subclass, or ``None`` if SwD has no schedule for it."""
    name = comfy_model_name(model_class)
    return next((f for f in FAMILIES if name in f.comfy_models), None)


def unsupported_model_message(model_class: type, model_type: str | None = None) -> str:
    """Why a model of ``model_class`` is refused, naming the model type and what is supported.

    ``model_type``: the host's name for the detected model where the class is generic
    (ComfyUI's model config, e.g. ``"SD15"`` for ``comfy.model_base.BaseModel``).
    """
    supported = ", ".join(f"{f.name} ({', '.join(f.comfy_models)})" for f in FAMILIES)
    return (f"the model is {model_type or model_class.__name__} ({comfy_model_name(model_class)}), which has "
            f"no SwD schedule here; SwD runs on {supported}")


def family_mismatch_message(schedule_family: str | None, model_family: ModelFamily) -> str | None:
    """A warning when a preset published for one family runs on another; ``None`` if they agree."""
    if schedule_family is None or schedule_family == model_family.name:
        return None
    return (f"the schedule was published for {schedule_family} but the model is {model_family.name}: "
            f"use a schedule made for {model_family.name} (or 'custom')")


#: What ComfyUI's FLUX model uses when the conditioning has no ``guidance`` (no FluxGuidance node).
COMFY_DEFAULT_GUIDANCE = 3.5


def guidance_report(family: ModelFamily, guidances: list, schedule_family: str | None) -> tuple[str, str | None]:
    """``(what ran, warning or None)`` for a guidance-distilled family.

    Args:
        family: the model's family (its ``distilled_guidance`` is what the LoRA was distilled with).
        guidances: the ``guidance`` value of every positive conditioning entry (``None``: not set).
        schedule_family: the schedule's family; the warning is given for that family's schedules.
    """
    want = family.distilled_guidance
    used = sorted({COMFY_DEFAULT_GUIDANCE if g is None else float(g) for g in guidances})
    shown = ", ".join(f"{g:g}" for g in used)
    ran = f"{family.name} guidance {shown}" + (" (none set: ComfyUI's default)" if None in guidances else "")
    if schedule_family != family.name or used == [want]:
        return ran, None
    if None in guidances:
        return ran, (f"the positive conditioning has no guidance, so ComfyUI runs {family.name} at its default "
                     f"{COMFY_DEFAULT_GUIDANCE:g}; the SwD {family.name} LoRA was distilled for {want:g}: add "
                     f"FluxGuidance {want:g} after the text encoder")
    return ran, (f"guidance {shown} differs from the {want:g} the SwD {family.name} LoRA was distilled for: set "
                 f"FluxGuidance to {want:g}")
