"""What a scale-wise run costs, in full-size steps: the figure SwD Sampler shows after a run."""
from __future__ import annotations

from collections.abc import Sequence

#: The cost model the figure uses, named in the text the node shows.
COST_MODEL = "cost by latent area"


def full_size_steps(sizes: Sequence[tuple[int, int]]) -> float:
    """The run's cost in steps at the final size: the sum of every step's latent area over the last one's.

    Args:
        sizes: latent ``(height, width)`` per step, as `swd_core.latent_sizes` gives them;
            the last is the final size.

    A DiT's tokens (and a UNet's activations) grow with the latent's area, so a step at half
    the side costs about a quarter of a full-size step (attention's quadratic term makes small
    steps cheaper still; this figure leaves it out). SwD's published 6-step SD3.5 schedule
    (32 … 128) costs ≈ 2.4 full-size steps; its 4-step one (64 … 128) ≈ 2.2.
    """
    if not sizes:
        raise ValueError("no steps")
    h, w = sizes[-1]
    return sum(a * b for a, b in sizes) / (h * w)


def describe_run(sizes: Sequence[tuple[int, int]]) -> str:
    """One line for the node: the steps' latent sizes (width x height) and `full_size_steps`.

    >>> describe_run([(32, 32), (64, 64), (128, 128)])
    '3 steps, latent 32x32 → 64x64 → 128x128: ≈ 1.3 full-size steps (cost by latent area)'
    """
    path = " → ".join(f"{w}x{h}" for h, w in sizes)
    steps = len(sizes)
    return (f"{steps} step{'s' if steps != 1 else ''}, latent {path}: "
            f"≈ {full_size_steps(sizes):.1f} full-size steps ({COST_MODEL})")
