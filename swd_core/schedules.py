"""SwD schedules: scales (latent side lengths) and sigmas, presets, parsing and per-step sizes.

A schedule of ``N`` steps has ``N`` scales ``s_0 < ... < s_{N-1}`` (latent side lengths, x8 for
pixels, at the published 1024x1024 target) and ``N + 1`` sigmas ``1 = σ_0 > ... > σ_{N-1} > σ_N = 0``.
Step ``i`` runs the model at scale ``s_i`` and noise level ``σ_i`` (Starodubcev et al., SwD,
arXiv:2503.16397). For DDPM families (SDXL) upstream writes the same list as DDPM times ``t / 1000``
(``1.0, 0.8, 0.6, 0.4, 0``); `model_sigmas` turns either kind into a host's noise levels.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SwDError

#: Largest scale we accept in a schedule: a bound on typed-in values (1024 latent pixels = 8192 px),
#: not a model limit; each model's own limit applies when it runs (SD3's position embedding
#: covers 192 patches = 384 latent pixels).
MAX_LATENT_SIDE = 1024
#: Longest schedule we accept; the published ones have 4 or 6 steps.
MAX_STEPS = 64


def validate(scales, sigmas) -> None:
    """Raise `SwDError` unless ``scales``/``sigmas`` form a usable schedule (see `Schedule`)."""
    if not scales:
        raise SwDError("the schedule has no scales: give at least one latent size, e.g. '32, 64, 128'", field="scales")
    if len(scales) > MAX_STEPS:
        raise SwDError(f"the schedule has {len(scales)} steps; at most {MAX_STEPS} are supported", field="scales")
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, int):
            raise SwDError(f"scale {s!r} is not a whole number of latent pixels", field="scales")
        if not 1 <= s <= MAX_LATENT_SIDE:
            raise SwDError(f"scale {s} is outside 1..{MAX_LATENT_SIDE} latent pixels (x8 for image pixels)",
                           field="scales")
    for a, b in zip(scales, scales[1:]):
        if b <= a:
            raise SwDError(f"scales must increase step by step, but {a} is followed by {b}", field="scales")
    if len(sigmas) != len(scales) + 1:
        raise SwDError(
            f"{len(scales)} scales need {len(scales) + 1} sigmas (one per step plus the final 0), "
            f"got {len(sigmas)}", field="sigmas",
        )
    for s in sigmas:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise SwDError(f"sigma {s!r} is not a finite number", field="sigmas")
    if sigmas[-1] != 0:
        raise SwDError(f"the last sigma must be 0 (the clean image), got {sigmas[-1]}", field="sigmas")
    for s in sigmas[:-1]:
        if not 0 < s <= 1:
            raise SwDError(f"sigma {s} is outside (0, 1]: schedule values run from 1 (pure noise) to 0 (flow "
                           f"noise levels, or DDPM times t/1000 for SDXL)", field="sigmas")
    for a, b in zip(sigmas, sigmas[1:]):
        if b >= a:
            raise SwDError(f"sigmas must decrease strictly, but {a} is followed by {b}", field="sigmas")


@dataclass(frozen=True)
class Schedule:
    """Scales and sigmas of a scale-wise schedule.

    Args:
        scales: latent side lengths per step, increasing; the last one is the size the
            schedule was published for (128 = 1024 px). Only ratios to the last scale matter
            once a target size is given (see `latent_sizes`).
        sigmas: noise levels, one more than `scales`, strictly decreasing, ending in 0; for a
            DDPM family (SDXL) the DDPM times ``t / 1000`` as upstream writes them (`model_sigmas`).
        name: the preset name, or ``"custom"``.
        family: the model family (``swd_core.families``) the schedule was published for,
            e.g. ``"SD3.5"``; ``None`` for custom schedules.
    """

    scales: tuple[int, ...]
    sigmas: tuple[float, ...]
    name: str = "custom"
    family: str | None = None

    def __post_init__(self):
        validate(self.scales, self.sigmas)

    @property
    def steps(self) -> int:
        return len(self.scales)

    def describe(self) -> str:
        scales = ", ".join(str(s) for s in self.scales)
        sigmas = ", ".join(f"{s:.4f}" for s in self.sigmas)
        return f"{self.name}: scales [{scales}], sigmas [{sigmas}]"


# Published SD3.5 schedules (yandex-research/swd READMEs and model cards). Names are part of saved workflows: never
# rename one, add a new name instead.
PRESETS: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule((32, 48, 64, 80, 96, 128), (1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0.0),
                 "SD3.5 Large, 6 steps", "SD3.5"),
        Schedule((64, 80, 96, 128), (1.0, 0.8959, 0.7371, 0.6022, 0.0),
                 "SD3.5 Large, 4 steps", "SD3.5"),
        Schedule((64, 80, 96, 128), (1.0, 0.8956, 0.7363, 0.6007, 0.0),
                 "SD3.5 Large, 4 steps (README code sigmas)", "SD3.5"),
        Schedule((32, 48, 64, 80, 96, 128), (1.0, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022, 0.0),
                 "SD3.5 Medium, 6 steps", "SD3.5"),
        Schedule((64, 80, 96, 128), (1.0, 0.8959, 0.7371, 0.6022, 0.0),
                 "SD3.5 Medium, 4 steps", "SD3.5"),
        Schedule((32, 64, 96, 128), (1.0, 0.9454, 0.7904, 0.6022, 0.0),
                 "SD3.5 Medium, 4 steps (first README)", "SD3.5"),
        # yresearch/swd_flux (guidance 4.5): the table's sigmas, and the README code's spelling
        Schedule((64, 80, 96, 128), (1.0, 0.8959, 0.7371, 0.6022, 0.0),
                 "FLUX.1-dev, 4 steps", "FLUX"),
        Schedule((64, 80, 96, 128), (1.0, 0.8956, 0.7363, 0.6007, 0.0),
                 "FLUX.1-dev, 4 steps (README code sigmas)", "FLUX"),
        # yresearch/swd-sdxl (MMD loss only): DDPM times t/1000, the final size 1024 px = scale 128
        Schedule((64, 80, 96, 128), (1.0, 0.8, 0.6, 0.4, 0.0), "SDXL, 4 steps", "SDXL"),
    )
}
CUSTOM = "custom"
DEFAULT_PRESET = "SD3.5 Large, 6 steps"



def format_numbers(values: Sequence[float]) -> str:
    """Values as SwD Schedule's text fields write them: ``"1.0, 0.9454, 0"`` (0 as ``0``, other floats
    as Python writes them, whole scales without a decimal point)."""
    return ", ".join("0" if v == 0 else str(v) for v in values)


def preset_texts(name: str) -> tuple[str, str]:
    """``(scales, sigmas)`` text of preset ``name``, as SwD Schedule shows it in its fields (`parse_schedule`
    reads the same schedule back)."""
    schedule = PRESETS[name]
    return format_numbers(schedule.scales), format_numbers(schedule.sigmas)

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_numbers(text: str, what: str) -> list[float]:
    """Parse ``"1, 0.5 0.25"`` (commas and/or spaces, optional ``[]``) into floats."""
    if not isinstance(text, str):
        raise SwDError(f"{what} must be text such as '32, 48, 64', got {type(text).__name__}", field=what)
    body = text.strip().strip("[]()").strip()
    if not body:
        raise SwDError(f"{what} is empty: give comma-separated numbers such as '32, 48, 64'", field=what)
    items = [t for t in re.split(r"[,\s]+", body) if t]
    if not items:
        raise SwDError(f"{what} has no numbers: give comma-separated numbers such as '32, 48, 64'", field=what)
    values = []
    for item in items:
        if not _NUMBER.fullmatch(item):
            raise SwDError(f"{what}: {item!r} is not a number", field=what)
        values.append(float(item))
    return values


def parse_schedule(scales_text: str, sigmas_text: str) -> Schedule:
    """A custom `Schedule` from text, as the upstream READMEs write it (see `schedule_from_values`)."""
    return schedule_from_values(parse_numbers(scales_text, "scales"), parse_numbers(sigmas_text, "sigmas"))


def schedule_from_values(raw_scales: Sequence[float], raw_sigmas: Sequence[float]) -> Schedule:
    """A custom `Schedule` from numbers (scales may be floats that are whole numbers).

    ``raw_sigmas`` may omit the trailing 0 (the first README lists one sigma per step,
    the newer one adds the final 0); both give the same schedule.
    """
    scales = []
    for s in raw_scales:
        if not float(s).is_integer():
            raise SwDError(f"scales: {s:g} is not a whole number of latent pixels", field="scales")
        if not 1 <= s <= MAX_LATENT_SIDE:
            raise SwDError(f"scales: {s:g} is outside 1..{MAX_LATENT_SIDE} latent pixels (x8 for image pixels)",
                           field="scales")
        scales.append(int(s))
    sigmas = [float(s) for s in raw_sigmas]
    if sigmas and len(sigmas) == len(scales) and sigmas[-1] != 0:
        sigmas.append(0.0)
    return Schedule(tuple(scales), tuple(sigmas))


def get_schedule(preset: str, scales_text: str = "", sigmas_text: str = "") -> Schedule:
    """The named preset, or the custom schedule parsed from text when ``preset == "custom"``."""
    if preset == CUSTOM:
        return parse_schedule(scales_text, sigmas_text)
    if preset not in PRESETS:
        raise SwDError(f"unknown preset {preset!r}; known: {', '.join([*PRESETS, CUSTOM])}", field="preset")
    return PRESETS[preset]


def _round_to(value: float, multiple: int) -> int:
    return int(math.floor(value / multiple + 0.5)) * multiple


def latent_sizes(scales: Sequence[int], height: int, width: int, patch: int = 2) -> list[tuple[int, int]]:
    """Latent ``(height, width)`` for every step when the final latent is ``height x width``.

    Step ``i`` keeps the ratio ``scales[i] / scales[-1]`` (``scales`` as in `Schedule`) to the final size in each
    dimension, rounded half up to a multiple of ``patch``; the last step is the final size
    itself. So the published presets give their published sizes at 128x128 (1024 px), and
    non-square targets keep their aspect ratio at every step.

    Raises:
        SwDError: if a step would round to less than one patch.
    """
    if height < 1 or width < 1:
        raise SwDError(f"the target latent {height}x{width} is empty")
    last = scales[-1]
    sizes = []
    for s in scales[:-1]:
        h, w = _round_to(height * s / last, patch), _round_to(width * s / last, patch)
        if h < patch or w < patch:
            raise SwDError(
                f"the target latent {height}x{width} ({height * 8}x{width * 8} px) is too small for "
                f"this schedule: step scale {s}/{last} would be {height * s / last:.2f}x{width * s / last:.2f} "
                f"latent pixels, less than one {patch}x{patch} patch; use a larger image or a schedule "
                f"whose first scale is larger"
            )
        sizes.append((h, w))
    sizes.append((height, width))
    return sizes


def truncate_for_denoise(schedule: Schedule, denoise: float) -> Schedule:
    """The tail of ``schedule`` that starts at the first sigma not above ``denoise``.

    Image-to-image: ``denoise = 1`` keeps the whole schedule; ``denoise = 0.8`` on the 6-step
    preset starts at σ = 0.7904 and scale 80, from the input image resized to that scale.
    """
    if not 0 < denoise <= 1:
        raise SwDError(f"denoise {denoise} is outside (0, 1]")
    for i, sigma in enumerate(schedule.sigmas[:-1]):
        if sigma <= denoise + 1e-9:
            if i == 0:
                return schedule
            return Schedule(schedule.scales[i:], schedule.sigmas[i:], f"{schedule.name} from step {i + 1}",
                            schedule.family)
    raise SwDError(
        f"denoise {denoise} is below every step's sigma of {schedule.name} (lowest "
        f"{schedule.sigmas[-2]}): nothing would change; raise denoise"
    )


#: DDPM models (SDXL) are trained at times t = 0 .. 999. Upstream writes SDXL's schedule as
#: ``t / 1000`` starting at 1.0, i.e. t = 1000, one past the tables: it is read as the last
#: trained time, 999, the noisiest point of the DDPM forward process, where diffusers' DDPM
#: pipelines start and what ComfyUI's ``model_sampling.sigma`` clamps 1000 to.
DDPM_LAST_TIMESTEP = 999
DDPM_TIME_SCALE = 1000  # upstream's values are t / 1000


def ddpm_timesteps(values: Sequence[float]) -> list[float]:
    """DDPM times of a DDPM family's schedule values (``t / 1000``), one per step, without the final 0.

    Times within 1e-3 of a whole number are that number (``0.8`` given as float32 is
    0.800000011920929: t = 800, as upstream means it).
    """
    times = [min(v * DDPM_TIME_SCALE, DDPM_LAST_TIMESTEP) for v in values if v > 0]
    return [float(round(t)) if abs(t - round(t)) < 1e-3 else t for t in times]


def model_sigmas(values: Sequence[float], prediction: str, sigma_at_timestep) -> list[float]:
    """A host's noise levels for a schedule's values.

    Args:
        values: `Schedule.sigmas` (or a tail), ending in 0.
        prediction: the model family's ``prediction`` (``families.FLOW``: the values are the
            noise levels already; ``families.EPSILON``: DDPM times ``t / 1000``).
        sigma_at_timestep: ``t -> σ`` of the host's noise schedule (ComfyUI:
            ``model_sampling.sigma``); used for DDPM families only.

    Returns:
        ``len(values)`` noise levels, the last one 0 where ``values`` ends in 0.
    """
    from .families import EPSILON

    if prediction != EPSILON:
        return [float(v) for v in values]
    sigmas = [float(sigma_at_timestep(t)) for t in ddpm_timesteps(values)]
    return sigmas + [0.0] * (len(values) - len(sigmas))


def same_sigmas(a: Sequence[float], b: Sequence[float], tol: float = 1e-4) -> bool:
    """Whether two sigma lists agree to ``tol``, relative above 1 (SDXL's noise levels reach 14.6)."""
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


def scales_for_sigmas(schedule: Schedule, sigmas: list[float],
                      schedule_sigmas: Sequence[float] | None = None) -> tuple[int, ...]:
    """The scales that go with ``sigmas`` coming from elsewhere (a stock scheduler, ``SplitSigmas``).

    If ``sigmas`` is a tail of the schedule's own sigmas (image-to-image with the second half
    of ``SplitSigmas``), the matching tail of the scales is returned; any other list with as
    many steps as the schedule uses all of its scales, step for step. ``schedule_sigmas``: the
    schedule's sigmas in the host's noise levels (`model_sigmas`; default: ``schedule.sigmas``).
    """
    steps = len(sigmas) - 1
    if steps < 1:
        raise SwDError("the sigmas have no step (fewer than 2 values)")
    ours = list(schedule.sigmas if schedule_sigmas is None else schedule_sigmas)
    if steps < schedule.steps and same_sigmas(ours[-steps - 1:], sigmas):
        return schedule.scales[-steps:]
    if steps == schedule.steps:
        return schedule.scales
    raise SwDError(
        f"{steps} sigma steps do not fit the schedule ({schedule.describe()}): connect the "
        f"schedule's own SIGMAS, the second half of a SplitSigmas of them, or a list with "
        f"{schedule.steps} steps"
    )
