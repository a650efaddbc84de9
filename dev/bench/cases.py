"""The registry of model families and the runs timed for each case.

Adding a model family = adding its module (see ``family.py``) to :data:`FAMILIES`.
"""
from __future__ import annotations

from types import ModuleType

from . import flux, sd3, sdxl
from .family import Case

FAMILIES: dict[str, ModuleType] = {"sd3": sd3, "flux": flux, "sdxl": sdxl}

#: ``swd``: the pack's SwDSampler; ``bare``: ComfyUI's bare forwards at SwD's sizes, summed;
#: ``same``: stock SamplerCustom + euler with SwD's sigmas at full size; ``base28``: the same with
#: BasicScheduler(the family's baseline scheduler and steps: "simple", 28 for SD3);
#: ``diffusers``: the family's diffusers reference loop.
VARIANTS = ("swd", "bare", "same", "base28", "diffusers")
REQUIRED_VARIANTS = ("swd", "bare", "diffusers")  # the full-size baselines may be left out (--variants)
BASELINE_STEPS = 28  # a family module may set its own (FLUX, SDXL: 30)
BASELINE_SCHEDULER = "simple"  # likewise (SDXL: "normal")


def baseline_steps(family: ModuleType) -> int:
    """Steps of the full-size stock baseline (the ``base28`` variant) for ``family``."""
    return getattr(family, "BASELINE_STEPS", BASELINE_STEPS)


def baseline_scheduler(family: ModuleType) -> str:
    """``BasicScheduler``'s scheduler for the full-size stock baseline of ``family``."""
    return getattr(family, "BASELINE_SCHEDULER", BASELINE_SCHEDULER)


def cases_for(mode: str, tiny: bool, families=None) -> tuple[Case, ...]:
    """The cases of ``families`` (names; default every family) for ``mode`` ("cpu" or "gpu"), tiny
    ones for ``tiny``."""
    key = f"tiny-{mode}" if tiny else mode
    names = FAMILIES if families is None else families
    return tuple(case for name in names for case in FAMILIES[name].CASES[key])


def family_of(case: Case | dict) -> ModuleType:
    """The family module of a case (or of a case as stored in a report's JSON)."""
    # reports written before FLUX/SDXL existed carry no family: they are SD3
    name = case.get("family", "sd3") if isinstance(case, dict) else case.family
    return FAMILIES[name]
